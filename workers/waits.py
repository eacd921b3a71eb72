"""Waits longer than a second, logged with what they waited for.

A delivery that stalls (a lock, an SMTP step, an HTTP request, a job sitting in its
queue, a worker stopping) is invisible in the figures unless someone says what it
waited for. ``waiting(what)`` around any wait logs one line on ``sorawatch.waits``
when it took longer than ``SLOW`` seconds; it costs two clock reads otherwise.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("sorawatch.waits")
SLOW = 1.0  # seconds


def report(what: str, seconds: float, level: int = logging.WARNING) -> None:
    """Log a wait of ``seconds`` for ``what`` when it was longer than ``SLOW``."""
    if seconds > SLOW:
        log.log(level, "waited %.1f s for %s", seconds, what)


@contextmanager
def waiting(what: str, level: int = logging.WARNING) -> Iterator[None]:
    """``with waiting("SMTP connect to host:25"):`` logs the wait when it was slow,
    whether the block returned or raised."""
    started = time.monotonic()
    try:
        yield
    finally:
        report(what, time.monotonic() - started, level)

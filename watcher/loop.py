"""The watcher's forever loop: poll what is due, sleep until the next due time, repeat.

It stops cleanly between polls when ``stop`` is set (the CLI sets it on SIGTERM
and SIGINT), and it outlives Redis restarts: a connection error is logged, the
loop sleeps with backoff and tries again; the Redis client reconnects by itself.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from sorawatch.settings import FeedSettings
from sorawatch.watcher.poll import PassSummary, Poller

log = logging.getLogger("sorawatch.watcher.loop")

IDLE_MIN = 1.0  # seconds: even when a due feed is busy elsewhere, do not spin
IDLE_MAX = 30.0  # seconds: re-read the due set at least this often (other watchers move it)
OUTAGE_MAX = 30.0  # seconds: the longest wait between tries while Redis is down


def run_forever(
    poller: Poller,
    feeds: Sequence[FeedSettings],
    stop: threading.Event,
    *,
    on_pass: Callable[[PassSummary], None] | None = None,
) -> int:
    """Poll due feeds until ``stop`` is set; returns the number of passes run."""
    passes = 0
    outages = 0
    while not stop.is_set():
        try:
            now = poller.clock()
            poller.schedule.ensure(feeds, now)
            due = poller.schedule.due(feeds, now)
            if due:
                summary = poller.run_pass(due, stop=stop)
                passes += 1
                if on_pass is not None and summary.outcomes:
                    on_pass(summary)
            upcoming = poller.schedule.next_due(feeds)
            wait = IDLE_MAX if upcoming is None else upcoming - poller.clock()
            wait = min(max(wait, IDLE_MIN), IDLE_MAX)
            if outages:
                log.info("Redis is back after %d failed tries", outages)
            outages = 0
        except (RedisConnectionError, RedisTimeoutError) as exc:
            outages += 1
            wait = min(OUTAGE_MAX, 0.5 * 2 ** min(outages, 10))
            log.warning("Redis unreachable (%s); retrying in %.1f s", exc, wait)
        stop.wait(wait)
    return passes

"""Running the RQ workers: one process per queue, or one burst pass over all of them.

Long-running (``sorawatch work``): one child process per queue (``changes``,
``email``, ``webhook``), each an RQ ``Worker`` with the scheduler (for delayed
retries). Separate processes, not threads, because a job is CPU and I/O in
asyncio loops of its own and RQ's forking worker gives each job a clean process
with a hard timeout; and because a queue that is slow (a webhook endpoint that
hangs until its timeout) must never hold up mail. SIGTERM/SIGINT to the parent
is passed to the children, which finish their current job (RQ's warm shutdown).

Burst (``sorawatch work --burst``): in this process, one worker over the queues
in flow order (changes → email → webhook), rounds of it, each first moving
scheduled jobs whose time has come onto their queues, until a round finds
nothing to do. One process on purpose: a fan-out enqueues mail after a mail-only
process would have found its queue empty and quit.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
from collections.abc import Sequence
from types import FrameType

from redis import Redis
from rq import SimpleWorker, Worker
from rq.serializers import JSONSerializer

from sorawatch.events import queue
from sorawatch.settings import Settings
from sorawatch.store import connect
from workers import runtime

QUEUES = ("changes", "email", "webhook")
MAX_ROUNDS = 1000  # a burst that keeps finding work this long is a loop, not a backlog

log = logging.getLogger("sorawatch.workers")


def burst(settings: Settings, redis: Redis | None = None, queues: Sequence[str] = QUEUES) -> int:
    """Run every job due now on ``queues`` (scheduled retries included) and return
    how many rounds did work. Configures the runtime for this process."""
    rt = runtime.configure(settings, redis)
    # One worker over every queue, in flow order: RQ drains them by priority and picks
    # up what the jobs enqueue on the way; a new round only when retries came due.
    queues_ = [queue(name, rt.redis) for name in queues]
    busy = 0
    for _ in range(MAX_ROUNDS):
        worker = SimpleWorker(queues_, connection=rt.redis, serializer=JSONSerializer)
        if not worker.work(burst=True, with_scheduler=True, logging_level="WARNING"):
            return busy
        busy += 1
    log.warning("burst: still finding work after %d rounds, stopping", MAX_ROUNDS)
    return busy


def _serve(settings: Settings, names: list[str]) -> None:
    """Child process: one RQ worker on ``names``, with the scheduler, until stopped."""
    redis = connect(settings)
    runtime.configure(settings, redis)
    worker = Worker([queue(n, redis) for n in names], connection=redis, serializer=JSONSerializer)
    worker.work(with_scheduler=True, logging_level=settings.log.level)


def serve(settings: Settings, queues: Sequence[str] = QUEUES) -> int:
    """Run one worker process per queue until SIGTERM/SIGINT; returns an exit code
    (0 when every child stopped cleanly)."""
    ctx = multiprocessing.get_context("spawn")
    children = [
        ctx.Process(target=_serve, args=(settings, [name]), name=f"sorawatch-{name}", daemon=False)
        for name in queues
    ]
    for child in children:
        child.start()
    log.info("workers started: %s", ", ".join(f"{c.name} (pid {c.pid})" for c in children))

    def stop(signum: int, _frame: FrameType | None) -> None:
        for child in children:
            if child.is_alive() and child.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for child in children:
            child.join()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    codes = [c.exitcode or 0 for c in children]
    return 0 if all(code == 0 for code in codes) else 1

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
import socket
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, SimpleWorker
from rq import Worker as RqWorker
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer

from sorawatch import internals, jobs
from sorawatch.events import queue
from sorawatch.settings import Settings
from sorawatch.store import connect, text
from sorawatch.workers import digest as digests
from sorawatch.workers import runtime, waits

QUEUES = jobs.queues()  # changes, then each channel's queue
MAX_ROUNDS = 1000  # a burst that keeps finding work this long is a loop, not a backlog
# RQ cleans its registries every 10 minutes by default: a job whose worker died
# elsewhere would wait that long to be re-run. A minute is cheap (a few ZRANGEs).
MAINTENANCE_INTERVAL = 60
# How often a worker's pubsub thread (RQ's command channel) wakes to see whether it
# should stop. RQ says 60 s, and stopping a worker joins that thread: see QuickStop.
PUBSUB_POLL = 1.0
STOP_WAIT = 10  # seconds: the most a stop waits for that thread or the scheduler
DIGEST_TICK = 30.0  # seconds between two looks for digests due (see sorawatch.workers.digest)

log = logging.getLogger("sorawatch.workers")


def _gone(redis: Redis, key: str, host: str) -> bool:
    """True when the RQ worker or scheduler registered at ``key`` is surely gone: its
    registration expired or says it died, or it ran on this host under a dead pid."""
    fields = redis.hmget(key, ["hostname", "pid", "death"])
    hostname, pid, death = (text(v) for v in fields)
    if hostname is None or death:
        return True
    if hostname != host or pid is None or not pid.isdigit():
        return False  # another machine: RQ's heartbeat expiry decides
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _zombie(int(pid))


def _zombie(pid: int) -> bool:
    """A dead process its (re)parent has not reaped yet still answers ``kill(pid, 0)``."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False  # no procfs: trust kill(pid, 0)


def expire_abandoned(redis: Redis, queues: Iterable[Queue]) -> int:
    """Mark the started jobs of dead workers as expired now, so RQ's own registry
    cleanup re-runs them (their ``Retry``) at once, not after their heartbeat TTL
    (job_monitoring_interval + 60 s). Returns how many were marked."""
    host = socket.gethostname()
    marked = 0
    for q in queues:
        registry = StartedJobRegistry(q.name, connection=redis, serializer=q.serializer)
        for entry in redis.zrange(registry.key, 0, -1):
            composite = text(entry)
            name = internals.execution_worker(redis, composite)
            if name and _gone(redis, internals.worker_key(name), host):
                redis.zadd(registry.key, {composite: 0}, xx=True)
                marked += 1
    return marked


def release_dead_scheduler_locks(redis: Redis, queues: Iterable[Queue]) -> list[str]:
    """Free the scheduler locks a killed worker's scheduler still holds (they live
    61 s), so this worker's scheduler takes them at start and delayed retries are not
    held up. Returns the queue names freed."""
    host = socket.gethostname()
    freed = []
    for q in queues:
        lock = internals.scheduler_lock_key(q.name)
        owner = redis.get(lock)
        if owner is None:
            continue
        name = text(owner)
        gone = _gone(redis, internals.scheduler_key(name), host)
        if gone and internals.release_scheduler_lock(redis, lock, name):
            freed.append(q.name)
    return freed


class QuickStop:
    """Worker behaviour shared by every RQ worker we run: it stops at once (at worst
    within ``PUBSUB_POLL`` seconds), and it logs a job that waited more than a second
    in its queue.

    RQ listens for commands on a pubsub channel in a thread that blocks up to 60 s in
    ``get_message``. At the end of ``work()`` RQ sends UNSUBSCRIBE, then stops the
    thread and joins it; redis-py (8.x) makes that join wait for the thread. When
    the thread reads the UNSUBSCRIBE reply before the stop flag is cleared, it goes
    back to a 60 s wait, and ``work()`` returns a minute late: the stall of one
    delivery channel in the fan-out bench, a burst (``work --burst``, every test that
    runs a SimpleWorker) hanging for a minute, a SIGTERM taking a minute.

    Here the flag is cleared first, so the UNSUBSCRIBE reply itself ends the thread;
    and the thread polls every ``PUBSUB_POLL`` seconds, which bounds the wait should
    the reply come first anyway. Commands still arrive at once. The RQ internals this
    overrides are listed in ``sorawatch.internals``.
    """

    def subscribe(self: Any) -> None:
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(
            sleep_time=PUBSUB_POLL,
            daemon=True,
            exception_handler=internals.pubsub_exception_handler(self),
        )

    def unsubscribe(self: Any) -> None:
        thread = self.pubsub_thread
        if thread is None:
            return
        with waits.waiting(f"worker {self.name} to stop listening for commands"):
            try:
                thread.stop(timeout=0)  # redis-py 8: trips the flag; 0: no join here
            except TypeError:
                thread.stop()  # older redis-py: stop() only trips the flag
            # Its reply wakes the thread, which now sees the flag and closes the pubsub;
            # the thread may close it first, so a failure here is of no consequence.
            with contextlib.suppress(RedisError, OSError, AttributeError):
                self.pubsub.unsubscribe()
            thread.join(timeout=STOP_WAIT)
            with contextlib.suppress(RedisError, OSError):
                self.pubsub.close()
        self.pubsub_thread = None

    def prepare_job_execution(self: Any, job: Any, *args: Any, **kwargs: Any) -> Any:
        enqueued = job.enqueued_at
        if enqueued is not None:
            if enqueued.tzinfo is None:
                enqueued = enqueued.replace(tzinfo=UTC)
            queued = (datetime.now(UTC) - enqueued).total_seconds()
            waits.report(f"job {job.id} in queue {job.origin}", queued, logging.INFO)
        return super().prepare_job_execution(job, *args, **kwargs)  # type: ignore[misc]


class BurstWorker(QuickStop, SimpleWorker):
    """RQ's SimpleWorker (jobs in this process) that stops promptly: for bursts and tests."""


class Worker(QuickStop, RqWorker):
    """RQ's forking worker that, at start and at each maintenance, first hands the jobs
    of workers killed on this host (SIGKILL, OOM) back to RQ's cleanup for a re-run,
    and that always stops when asked.

    RQ's own shutdown could hang: the pubsub thread (see QuickStop), and after a Redis
    restart the scheduler's join could wait on a connection being retried. Here the
    scheduler gets ``STOP_WAIT`` seconds, then is killed (it is daemon-like: nothing is
    lost by not waiting for it).
    """

    def clean_registries(self) -> None:
        found = expire_abandoned(self.connection, self.queues)
        if found:
            self.log.warning("re-running %d job(s) abandoned by dead workers", found)
        super().clean_registries()  # type: ignore[no-untyped-call]

    def stop_scheduler(self) -> None:
        process = internals.scheduler_process(self.scheduler)
        if process is None or not process.pid:
            return
        with contextlib.suppress(OSError):
            os.kill(process.pid, signal.SIGTERM)
        process.join(STOP_WAIT)
        if process.is_alive():
            self.log.warning(
                "scheduler (pid %s) did not stop in %d s: killing it", process.pid, STOP_WAIT
            )
            with contextlib.suppress(OSError):
                os.kill(process.pid, signal.SIGKILL)
            process.join(STOP_WAIT)


def burst(settings: Settings, redis: Redis | None = None, queues: Sequence[str] = QUEUES) -> int:
    """Run every job due now on ``queues`` (scheduled retries included) and return
    how many rounds did work. Configures the runtime for this process."""
    rt = runtime.configure(settings, redis)
    if "email" in queues:
        digests.tick(rt.log, settings)
    # One worker over every queue, in flow order: RQ drains them by priority and picks
    # up what the jobs enqueue on the way; a new round only when retries came due.
    queues_ = [queue(name, rt.redis, rt.keys) for name in queues]
    busy = 0
    for _ in range(MAX_ROUNDS):
        worker = BurstWorker(queues_, connection=rt.redis, serializer=JSONSerializer)
        if not worker.work(burst=True, with_scheduler=True, logging_level="WARNING"):
            return busy
        busy += 1
    log.warning("burst: still finding work after %d rounds, stopping", MAX_ROUNDS)
    return busy


def _serve(settings: Settings, names: list[str]) -> None:
    """Child process: one RQ worker on ``names``, with the scheduler, until stopped."""
    redis = connect(settings)
    rt = runtime.configure(settings, redis)
    queues = [queue(n, redis, rt.keys) for n in names]
    release_dead_scheduler_locks(redis, queues)  # before work() starts our scheduler
    worker = Worker(
        queues,
        connection=redis,
        serializer=JSONSerializer,
        maintenance_interval=MAINTENANCE_INTERVAL,
    )
    worker.work(with_scheduler=True, logging_level=settings.log.level)


def _digest_tick(settings: Settings) -> Callable[[], None]:
    """The parent's look for digests due (the children are busy with jobs). It never
    takes the workers down: a Redis outage is logged and the next look tries again, and
    anything else is logged with its traceback."""
    redis = connect(settings)
    rt = runtime.configure(settings, redis)

    def tick() -> None:
        try:
            digests.tick(rt.log, settings)
        except RedisError as exc:
            log.warning("digests: could not look for digests due: %s", exc)
        except Exception:
            log.exception("digests: the look for digests due failed")

    return tick


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

    stopping: list[int] = []

    def stop(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)
        for child in children:
            if child.is_alive() and child.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        tick = _digest_tick(settings) if "email" in queues else None
        while any(c.is_alive() for c in children):
            if tick is not None:
                tick()
            for child in children:
                child.join(DIGEST_TICK / len(children))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    # A child still starting when told to stop dies of the SIGTERM itself (RQ has not yet
    # put in its handler): it had no job, so that is a clean stop too.
    clean = {0, -signal.SIGTERM} if stopping else {0}
    failed = [c for c in children if (c.exitcode or 0) not in clean]
    for child in failed:
        log.error("worker %s (pid %s) exited with code %s", child.name, child.pid, child.exitcode)
    return 1 if failed else 0

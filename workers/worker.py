"""Running the RQ workers: one process per queue, or one burst pass over all of them.

Long-running (``sorawatch work``): one child process per queue (``changes``,
``email``, ``webhook``), each an RQ ``Worker``; the parent restarts a child that
ends before it is told to stop, and runs the one RQ scheduler (delayed retries)
and the look for digests due. Separate processes, not threads, because a job is CPU and I/O in
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
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from multiprocessing import connection as mp_connection
from types import FrameType
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, SimpleWorker
from rq import Worker as RqWorker
from rq.registry import StartedJobRegistry
from rq.scheduler import RQScheduler
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
STOP_WAIT = 10  # seconds: the most a stop waits for that thread
SCHEDULE_TICK = 1.0  # seconds between two moves of delayed jobs (RQ's own interval)
DIGEST_TICK = 30.0  # seconds between two looks for digests due (see sorawatch.workers.digest)
RESTART_SOON = 5.0  # seconds: a child that ends sooner after its start waits this long to restart

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
    and that always stops when asked (see QuickStop).
    """

    def clean_registries(self) -> None:
        found = expire_abandoned(self.connection, self.queues)
        if found:
            self.log.warning("re-running %d job(s) abandoned by dead workers", found)
        super().clean_registries()  # type: ignore[no-untyped-call]


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
    """Child process: one RQ worker on ``names``, until stopped."""
    redis = connect(settings)
    rt = runtime.configure(settings, redis)
    queues = [queue(n, redis, rt.keys) for n in names]
    worker = Worker(
        queues,
        connection=redis,
        serializer=JSONSerializer,
        maintenance_interval=MAINTENANCE_INTERVAL,
    )
    worker.work(logging_level=settings.log.level)


def _scheduler(rt: runtime.Runtime, names: Sequence[str]) -> tuple[RQScheduler, Callable[[], None]]:
    """The parent's RQ scheduler for ``names`` and its step: move the delayed jobs
    (retries) whose time has come onto their queues.

    In the parent, not forked by each worker as RQ does: a forked scheduler outlived a
    killed worker, and it held copies of that worker's Redis connections, so Redis
    handed the next job to the dead worker's blocked BLMOVE and the job sat stranded
    until RQ's cleanup, minutes later; and nothing ever stopped it."""
    queues = [queue(n, rt.redis, rt.keys) for n in names]
    scheduler = RQScheduler(queues, connection=rt.redis, serializer=JSONSerializer)

    def step() -> None:
        if not scheduler.pid:  # the first step
            release_dead_scheduler_locks(rt.redis, queues)  # a killed parent's live 61 s
            scheduler.register_birth()
        if scheduler.should_reacquire_locks:
            scheduler.acquire_locks()  # type: ignore[no-untyped-call]
        scheduler.heartbeat()  # type: ignore[no-untyped-call]
        scheduler.enqueue_scheduled_jobs()  # type: ignore[no-untyped-call]

    return scheduler, step


def _guarded(what: str, step: Callable[[], object]) -> Callable[[], None]:
    """One of the parent's periodic steps (the scheduler, the look for digests due),
    made so that it never takes the workers down: a Redis outage is logged and the
    next tick tries again, and anything else is logged with its traceback."""

    def tick() -> None:
        try:
            step()
        except RedisError as exc:
            log.warning("%s: Redis: %s", what, exc)
        except Exception:
            log.exception("%s failed", what)

    return tick


def serve(settings: Settings, queues: Sequence[str] = QUEUES) -> int:
    """Run one worker process per queue until SIGTERM/SIGINT; returns an exit code
    (0 when every child stopped cleanly).

    A child that ends before it is told to stop is started again at once: a queue
    without its worker is mail nobody sends (RQ's own loop quits on an error it does
    not know, and a killed child is as gone). One that ends within ``RESTART_SOON``
    seconds of its start is started again only after that many seconds, so a child
    that cannot start does not spin."""
    ctx = multiprocessing.get_context("spawn")

    def spawn(name: str) -> Any:
        child = ctx.Process(
            target=_serve, args=(settings, [name]), name=f"sorawatch-{name}", daemon=False
        )
        child.start()
        started[name] = time.monotonic()
        if stopping and child.pid is not None:  # told to stop while it was starting
            os.kill(child.pid, signal.SIGTERM)
        return child

    stopping: list[int] = []
    started: dict[str, float] = {}
    children = {name: spawn(name) for name in queues}
    log.info("workers started: %s", ", ".join(f"{c.name} (pid {c.pid})" for c in children.values()))

    def stop(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)
        for child in children.values():
            if child.is_alive() and child.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    rt = runtime.configure(settings, connect(settings))
    scheduler, step = _scheduler(rt, queues)
    schedule = _guarded("scheduler: moving delayed jobs", step)
    try:
        digest_tick = (
            _guarded("digests: the look for digests due", lambda: digests.tick(rt.log, settings))
            if "email" in queues
            else None
        )
        next_digest = time.monotonic()
        while not stopping or any(c.is_alive() for c in children.values()):
            if not stopping:
                schedule()
                if digest_tick is not None and time.monotonic() >= next_digest:
                    digest_tick()
                    next_digest = time.monotonic() + DIGEST_TICK
            for name, child in list(children.items()):
                if stopping or child.is_alive() or time.monotonic() - started[name] < RESTART_SOON:
                    continue
                log.warning(
                    "worker %s (pid %s) ended with code %s before it was told to stop: "
                    "starting it again",
                    child.name,
                    child.pid,
                    child.exitcode,
                )
                children[name] = spawn(name)
            alive = [c.sentinel for c in children.values() if c.is_alive()]
            if alive:
                mp_connection.wait(alive, timeout=SCHEDULE_TICK)  # wakes when a child ends
            else:
                time.sleep(SCHEDULE_TICK)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        with contextlib.suppress(RedisError):
            scheduler.stop()  # type: ignore[no-untyped-call]  # frees its locks at once
    # A child still starting when told to stop dies of the SIGTERM itself (RQ has not yet
    # put in its handler): it had no job, so that is a clean stop too.
    clean = {0, -signal.SIGTERM} if stopping else {0}
    failed = [c for c in children.values() if (c.exitcode or 0) not in clean]
    for child in failed:
        log.error("worker %s (pid %s) exited with code %s", child.name, child.pid, child.exitcode)
    return 1 if failed else 0

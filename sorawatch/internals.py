"""Every private internal of another library that sorawatch relies on, in one place.

Each is reached only through the accessor below it, so an upgrade that breaks one
breaks one function; ``tests/sorawatch/test_internals.py`` checks each against the
installed library and says what to change.

Python's ``re``
    ``re._parser`` and ``re._constants`` (accessors ``sre_parse``, ``sre_constants``).
    Used by ``watcher/literals.py`` to read the literal strings a pattern's match must
    contain, which lets the classifier skip most patterns with a substring test. The
    parsed form is the only reliable source of them; the public aliases ``sre_parse``
    and ``sre_constants`` warn on import since Python 3.11. If they change,
    ``required_literals`` raises or finds nothing and classification gets slower
    (or, if it found wrong literals, misses matches).

httpx (with httpcore)
    ``HTTPTransport._pool`` and its ``ConnectionPool._network_backend``
    (``wrap_network_backend``). Used by ``watcher/deadline.py`` to bound each socket
    read of a feed fetch by the fetch's deadline: httpx has no public hook for
    httpcore's network backend. If they change, the wrap is skipped and a server that
    drips its headers a byte a second holds a watcher pass for as long as it likes.

    ``AsyncHTTPTransport._pool`` (``set_pool``). Used by ``sorawatch/netguard.py``'s
    ``GuardedTransport`` to put httpx's transport on a pool whose network backend
    checks every address it connects to (the SSRF guard against DNS rebinding).
    If it changes, webhooks are sent through httpx's own pool, unguarded.

RQ (python-rq)
    ``rq.scheduler.SCHEDULER_KEY_TEMPLATE``, ``RQScheduler.get_locking_key``,
    ``rq.scripts.release_lock``, ``Worker.redis_worker_namespace_prefix`` and
    ``Execution.from_composite_key`` with its ``worker_name`` field (``scheduler_key``,
    ``scheduler_lock_key``, ``release_scheduler_lock``, ``worker_key``,
    ``execution_worker``). Used by ``workers/worker.py`` to hand back, at start, the jobs
    and scheduler locks of workers killed on this host (the registrations hold
    ``hostname``, ``pid`` and ``death``). If they change, a killed worker's jobs wait for
    RQ's heartbeat expiry and delayed retries wait out a 61 s lock, or the start fails.

    ``Worker.subscribe`` / ``Worker.unsubscribe`` (overridden), the attributes
    ``pubsub``, ``pubsub_thread``, ``pubsub_channel_name``, ``handle_payload`` and
    ``Worker._pubsub_exception_handler`` (``pubsub_exception_handler``). Used by
    ``workers/worker.py``'s ``QuickStop`` so that a worker stops at once instead of a
    minute late (see its docstring). If they change, RQ's command channel is not
    listened to, or every burst and stop takes a minute again.

redis-py
    ``PubSubWorkerThread.stop(timeout=...)``: public, but the ``timeout`` parameter is
    new in 8.x; ``QuickStop`` falls back to ``stop()`` without it.

Not internals, though they look like them: ``SplitResult._replace`` (namedtuple's
documented API, in ``sorawatch/redact.py``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType

import httpcore
import httpx
from redis import Redis
from rq import Worker
from rq.executions import Execution
from rq.scheduler import SCHEDULER_KEY_TEMPLATE, RQScheduler
from rq.scripts import release_lock

from sorawatch.store import text

# -- Python's re ---------------------------------------------------------------------


def sre_parse() -> ModuleType:
    """``re._parser``: ``parse(source)`` gives a pattern's parsed form."""
    return importlib.import_module("re._parser")


def sre_constants() -> ModuleType:
    """``re._constants``: the opcodes (LITERAL, BRANCH, SUBPATTERN, ...) of a parsed form."""
    return importlib.import_module("re._constants")


# -- httpx and httpcore --------------------------------------------------------------


def wrap_network_backend(
    transport: httpx.HTTPTransport,
    wrap: Callable[[httpcore.NetworkBackend], httpcore.NetworkBackend],
) -> bool:
    """Put ``transport``'s connection pool on ``wrap(its network backend)``; False (and
    nothing changed) when the transport has no such pool."""
    pool = getattr(transport, "_pool", None)
    if not isinstance(pool, httpcore.ConnectionPool):
        return False
    pool._network_backend = wrap(pool._network_backend)
    return True


def set_pool(transport: httpx.AsyncHTTPTransport, pool: httpcore.AsyncConnectionPool) -> None:
    """Make ``transport`` send through ``pool`` instead of the one httpx built."""
    transport._pool = pool


# -- RQ ------------------------------------------------------------------------------


def scheduler_key(name: str) -> str:
    """The registration hash of the RQ scheduler named ``name``."""
    key: str = SCHEDULER_KEY_TEMPLATE % name
    return key


def worker_key(name: str) -> str:
    """The registration hash of the RQ worker named ``name``."""
    return Worker.redis_worker_namespace_prefix + name


def scheduler_lock_key(queue_name: str) -> str:
    """The key of the scheduler lock of queue ``queue_name`` (its value: the owner's name)."""
    key: str = RQScheduler.get_locking_key(queue_name)
    return key


def release_scheduler_lock(redis: Redis, lock_key: str, owner: str) -> bool:
    """Delete ``lock_key`` if ``owner`` still holds it; True when it was deleted."""
    return bool(release_lock(redis, lock_key, owner))


def execution_worker(redis: Redis, composite: str) -> str | None:
    """The name of the worker running the execution ``composite`` (an entry of a
    StartedJobRegistry), None when Redis no longer knows it."""
    raw = redis.hget(Execution.from_composite_key(composite, redis).key, "worker_name")
    return text(raw)


def pubsub_exception_handler(worker: Worker) -> Callable[..., None]:
    """RQ's handler for an error in a worker's command-channel thread."""
    handler: Callable[..., None] = worker._pubsub_exception_handler
    return handler

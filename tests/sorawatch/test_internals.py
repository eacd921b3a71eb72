"""Each private internal listed in sorawatch.internals still exists, in the shape we use.

A failure names the library and what to change: an upgrade moved something we reach
inside, and the accessor in sorawatch/internals.py (with its call site) must follow.
"""

from __future__ import annotations

import inspect
import socket

import httpcore
import httpx
from redis import Redis
from rq import Queue, Worker
from rq.registry import StartedJobRegistry
from rq.scheduler import RQScheduler

from sorawatch import internals
from sorawatch.netguard import GuardedBackend, GuardedTransport

FIX = "update sorawatch/internals.py (and its docstring) for the installed version"


def test_re_parser_gives_the_parsed_form_literals_are_read_from() -> None:
    parse, sre = internals.sre_parse(), internals.sre_constants()
    for name in ("LITERAL", "AT", "ASSERT", "ASSERT_NOT", "MAX_REPEAT", "MIN_REPEAT", "BRANCH"):
        assert hasattr(sre, name), f"Python re: re._constants has no {name}; {FIX}"
    shape = (
        f"Python re: re._parser.parse no longer gives the shape watcher/literals.py reads; {FIX}"
    )
    [(op, av)] = list(parse.parse("a"))
    assert (op, av) == (sre.LITERAL, ord("a")), shape
    [(op, av)] = list(parse.parse("(ab)"))
    assert (op, [o for o, _ in av[3]]) == (sre.SUBPATTERN, [sre.LITERAL] * 2), shape
    [(op, av)] = list(parse.parse("(?:ab)+"))
    assert (op, av[0], len(list(av[2]))) == (sre.MAX_REPEAT, 1, 2), shape
    [(op, av)] = list(parse.parse("ab|cd"))
    assert (op, len(av[1])) == (sre.BRANCH, 2), shape


def test_httpx_transport_pool_network_backend_can_be_wrapped() -> None:
    wrapped: list[httpcore.NetworkBackend] = []

    def wrap(backend: httpcore.NetworkBackend) -> httpcore.NetworkBackend:
        wrapped.append(backend)
        return backend

    transport = httpx.HTTPTransport(trust_env=False)
    assert internals.wrap_network_backend(transport, wrap), (
        f"httpx {httpx.__version__}: HTTPTransport._pool is no longer an httpcore "
        f"ConnectionPool, so feed fetches lose their deadline; {FIX}"
    )
    assert isinstance(wrapped[0], httpcore.NetworkBackend), (
        f"httpcore {httpcore.__version__}: ConnectionPool._network_backend is gone; {FIX}"
    )


def test_httpx_async_transport_sends_through_the_pool_we_set() -> None:
    transport = GuardedTransport(allow_private=False)
    pool = getattr(transport, "_pool", None)
    assert isinstance(pool, httpcore.AsyncConnectionPool), (
        f"httpx {httpx.__version__}: AsyncHTTPTransport._pool is gone; {FIX}"
    )
    assert isinstance(pool._network_backend, GuardedBackend), (
        f"httpx {httpx.__version__}: the guarded pool did not replace httpx's own, so "
        f"webhooks would go out unguarded; {FIX}"
    )
    source = inspect.getsource(httpx.AsyncHTTPTransport.handle_async_request)
    assert "self._pool" in source, (
        f"httpx {httpx.__version__}: AsyncHTTPTransport no longer sends through "
        f"self._pool, so webhooks would go out unguarded; {FIX}"
    )


def test_rq_scheduler_registration_lock_and_release(redis: Redis) -> None:
    queue = Queue("internals", connection=redis)
    scheduler = RQScheduler([queue], connection=redis)
    scheduler.register_birth()
    fields = redis.hgetall(internals.scheduler_key(scheduler.name))
    assert {b"hostname", b"pid"} <= set(fields), (
        f"RQ: the scheduler no longer registers hostname and pid under "
        f"SCHEDULER_KEY_TEMPLATE ({internals.scheduler_key('<name>')}); {FIX}"
    )
    lock = internals.scheduler_lock_key(queue.name)
    assert queue.name in lock, f"RQ: RQScheduler.get_locking_key gave {lock!r}; {FIX}"
    redis.set(lock, scheduler.name)
    assert not internals.release_scheduler_lock(redis, lock, "someone-else")
    assert internals.release_scheduler_lock(redis, lock, scheduler.name), (
        f"RQ: rq.scripts.release_lock(connection, lock_key, owner_token) no longer frees "
        f"the lock its owner holds; {FIX}"
    )
    assert redis.get(lock) is None


def test_rq_worker_registration_and_the_execution_of_a_started_job(redis: Redis) -> None:
    queue = Queue("internals", connection=redis)
    worker = Worker([queue], connection=redis)
    worker.register_birth()
    fields = redis.hgetall(internals.worker_key(worker.name))
    assert (fields.get(b"hostname"), b"pid" in fields) == (socket.gethostname().encode(), True), (
        f"RQ: a worker no longer registers hostname and pid under "
        f"Worker.redis_worker_namespace_prefix; {FIX}"
    )
    job = queue.enqueue("builtins.len", "abc")
    worker.prepare_execution(job)  # as RQ does before it runs a job
    [entry] = redis.zrange(StartedJobRegistry(queue.name, connection=redis).key, 0, -1)
    assert internals.execution_worker(redis, entry.decode()) == worker.name, (
        f"RQ: a StartedJobRegistry entry no longer leads (Execution.from_composite_key, "
        f"field worker_name) to the worker running it; {FIX}"
    )


def test_rq_worker_command_channel_methods_quickstop_overrides() -> None:
    for name in ("subscribe", "unsubscribe", "handle_payload", "prepare_job_execution"):
        assert callable(getattr(Worker, name, None)), (
            f"RQ: Worker.{name} is gone, so sorawatch.workers.worker.QuickStop overrides nothing; {FIX}"
        )
    assert hasattr(Worker, "pubsub_channel_name"), f"RQ: Worker.pubsub_channel_name is gone; {FIX}"
    handler = getattr(Worker, "_pubsub_exception_handler", None)
    assert handler is not None, f"RQ: Worker._pubsub_exception_handler is gone; {FIX}"
    params = list(inspect.signature(handler).parameters)
    assert params == ["self", "exc", "pubsub", "pubsub_thread"], (
        f"RQ: Worker._pubsub_exception_handler takes {params}, not what redis-py's "
        f"run_in_thread passes; {FIX}"
    )

"""A bound on a whole HTTP fetch, not just on each read.

httpx's read timeout restarts with every byte, so a server that drips its status
line and headers a byte a second holds a request for as long as it likes (h11
accepts 100 KiB of headers: a day and more), and one watcher pass waits for it.
Here every socket read of the watcher's client waits at most until the deadline
of the fetch in progress, which ``until`` sets for the calling thread.
"""

from __future__ import annotations

import contextlib
import ssl
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import Any

import httpcore
import httpx

from sorawatch import internals

_DEADLINE: ContextVar[float | None] = ContextVar("watcher_fetch_deadline", default=None)


@contextlib.contextmanager
def until(deadline: float) -> Iterator[None]:
    """Reads by this thread (through ``bounded_transport``) end by ``deadline`` (monotonic
    seconds); one that would wait longer raises httpx.ReadTimeout."""
    token = _DEADLINE.set(deadline)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def bounded_transport(limits: httpx.Limits) -> httpx.HTTPTransport:
    """An httpx transport whose socket reads honour ``until``."""
    made = httpx.HTTPTransport(limits=limits, trust_env=False)
    # httpx has no public hook for httpcore's network backend: see sorawatch.internals
    # (and tests/hostile/test_feeds.py fails if it stops working).
    internals.wrap_network_backend(made, _Backend)
    return made


class _Stream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        deadline = _DEADLINE.get()
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise httpcore.ReadTimeout("the fetch ran past its deadline")
            timeout = left if timeout is None else min(timeout, left)
        return self._stream.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, timeout)

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        return _Stream(self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        return _Stream(stream)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        return _Stream(self._backend.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)

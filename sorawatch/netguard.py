"""Keep webhook traffic out of the private network (SSRF guard).

``check_url`` refuses a URL whose scheme is not http(s) or whose host resolves to
a private, loopback, link-local, multicast, reserved or unspecified address. A
name can resolve differently at send time than at registration (DNS rebinding),
so ``GuardedBackend`` checks the address it actually connects to, for every
connection httpx opens: httpx resolves nothing itself, the backend does.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from sorawatch import internals
from sorawatch.errors import ValidationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def is_public(address: str | IPAddress) -> bool:
    """True when ``address`` is a globally routable unicast address."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        # ::ffff:127.0.0.1 and 2002::/16 wrap an IPv4 address: judge the inner one.
        inner = ip.ipv4_mapped or ip.sixtofour
        if inner is not None:
            return is_public(inner)
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to; raises ValidationError when it resolves to none."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ValidationError(f"{host}: cannot resolve ({exc})") from None
    addresses: list[str] = []
    for info in infos:
        addr = str(info[4][0]).split("%", 1)[0]  # drop an IPv6 scope id
        if addr not in addresses:
            addresses.append(addr)
    if not addresses:
        raise ValidationError(f"{host}: resolves to no address")
    return addresses


def check_addresses(host: str, addresses: Iterable[str], allow_private: bool) -> None:
    """Raise ValidationError when any address of ``host`` is not public (unless allowed)."""
    if allow_private:
        return
    for addr in addresses:
        if not is_public(addr):
            raise ValidationError(f"{host} ({addr}): points inside the network")


def check_url(url: str, allow_private: bool) -> None:
    """Refuse a webhook URL that is not http(s) or that points inside the network.

    Resolves the host now (getaddrinfo) and checks every address. Raises
    ValidationError with the reason; writes nothing.
    """
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise ValidationError(f"{url!r}: not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise ValidationError(f"{url!r}: only http and https URLs are allowed")
    host = parts.hostname
    if not host:
        raise ValidationError(f"{url!r}: no host")
    if parts.username or parts.password:
        raise ValidationError(f"{url!r}: credentials in the URL are not allowed")
    check_addresses(host, resolve(host, port), allow_private)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that resolves the host itself, refuses
    non-public addresses, and connects to the address it checked (so a second,
    different DNS answer cannot slip in between check and connect)."""

    def __init__(self, allow_private: bool, inner: httpcore.AsyncNetworkBackend | None = None):
        self.allow_private = allow_private
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        import anyio

        try:
            addresses = await anyio.to_thread.run_sync(resolve, host, port)
            check_addresses(host, addresses, self.allow_private)
        except ValidationError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        last: Exception | None = None
        for addr in addresses:
            try:
                return await self.inner.connect_tcp(
                    addr, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        raise last or httpcore.ConnectError(f"{host}: no address to connect to")

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not allowed for webhooks")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with its connection pool on a ``GuardedBackend``.

    ``ssl_context``: one to share between transports (building one loads the CA
    bundle, tens of milliseconds); a new default context when None."""

    def __init__(
        self,
        allow_private: bool,
        max_connections: int = 100,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        context = ssl_context or httpx.create_ssl_context(trust_env=False)
        # Given the context, httpx's own (replaced) pool does not load the CA bundle again.
        super().__init__(verify=context, trust_env=False)
        pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=5.0,
            network_backend=GuardedBackend(allow_private),
        )
        internals.set_pool(self, pool)  # httpx has no public way: see sorawatch.internals


def is_refusal(exc: BaseException) -> bool:
    """True when an httpx error is our own refusal of a private address."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ValidationError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False

"""What every response carries and every request must respect.

Security headers on every response (pages hold text from feeds, so the CSP
forbids scripts outright), a cap on request bodies (checked on the declared
length and on the bytes actually streamed), and the admin bearer token.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sorawatch.web.errors import ApiError
from sorawatch.web.ratelimit import RateLimited, hit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_BODY = 64 * 1024
AUTH_FAILURES = 30  # wrong admin or metrics tokens one client may send per hour
AUTH_WINDOW = 3600

CSP = (
    "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)


class BodyTooLarge(HTTPException):
    """Raised inside the app when a streamed body passes the cap.

    An HTTPException so FastAPI's body parsing lets it through (it turns any
    other error while reading the body into a 400) and the handlers answer 413.
    """

    def __init__(self) -> None:
        super().__init__(413, f"request body is larger than {MAX_BODY // 1024} KiB")


class SecurityMiddleware:
    """Adds the security headers to every response and caps request bodies.

    Pure ASGI (not BaseHTTPMiddleware) so it also covers responses built by
    exception handlers and never buffers a streamed body.
    """

    def __init__(self, app: ASGIApp, max_body: int = MAX_BODY) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in HEADERS if k not in names]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        declared = _content_length(scope)
        if declared is not None and declared > self.max_body:
            await _too_large(scope, receive, send_with_headers)
            return

        seen = 0

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise BodyTooLarge
            return message

        try:
            await self.app(scope, counted_receive, send_with_headers)
        except BodyTooLarge:
            await _too_large(scope, receive, send_with_headers)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _too_large(scope: Scope, receive: Receive, send: Send) -> None:
    from sorawatch.web.errors import error_response

    response = error_response(
        Request(scope, receive), 413, f"request body is larger than {MAX_BODY // 1024} KiB"
    )
    await response(scope, receive, send)


_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="adminToken",
    description="`web.admin_token` from the settings; without it the admin API answers 404.",
)


def check_admin(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Let the request through only with the configured admin bearer token.

    Raises ApiError 404 when no token is configured (the admin API is off) and
    401 when the token is missing or wrong (compared in constant time).
    """
    expected = request.app.state.settings.web.admin_token
    if not expected:
        raise ApiError(404, "the admin API is off: set web.admin_token to turn it on")
    check_bearer(request, expected, "admin")


def check_bearer(request: Request, expected: str, what: str) -> None:
    """Let the request through only with ``Authorization: Bearer <expected>``.

    Raises ApiError 401 for a missing or wrong token (compared in constant time) and
    429 once the client (its address, or its IPv6 /64) has failed
    ``AUTH_FAILURES`` times within the hour: guessing is slowed to a crawl, and a
    right token from that client waits out the window too.
    """
    state = request.app.state
    bucket = client_bucket(request)
    failed = state.redis.get(state.keys.rate_limit("auth-failures", bucket))
    if failed is not None and int(failed) >= AUTH_FAILURES:
        ttl = int(state.redis.ttl(state.keys.rate_limit("auth-failures", bucket)))
        raise ApiError(
            429, f"too many failed {what} logins from this client; retry later",
            headers={"Retry-After": str(max(ttl, 1))},
        )  # fmt: skip
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), expected.encode()
    ):
        with contextlib.suppress(RateLimited):  # the next attempt gets the 429
            hit(state.redis, state.keys, "auth-failures", bucket, AUTH_FAILURES, AUTH_WINDOW)
        raise ApiError(
            401, f"a valid {what} bearer token is required", headers={"WWW-Authenticate": "Bearer"}
        )


def _networks(cidrs: tuple[str, ...]) -> list[IPNetwork]:
    return [ipaddress.ip_network(c, strict=False) for c in cidrs]


def _ip(value: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError:
        return None


def client_address(request: Request) -> str:
    """The client's address: the peer, unless the peer is one of ``web.trusted_proxies``;
    then the last ``X-Forwarded-For`` hop that is not a trusted proxy (the hops before
    it are whatever the client wrote, so they are never believed)."""
    peer = request.client.host if request.client else "unknown"
    trusted = _networks(tuple(request.app.state.settings.web.trusted_proxies))
    if not trusted:
        return peer

    def is_trusted(value: str) -> bool:
        ip = _ip(value)
        return ip is not None and any(ip in net for net in trusted)

    if not is_trusted(peer):
        return peer
    hops = [h.strip() for v in request.headers.getlist("x-forwarded-for") for h in v.split(",")]
    for hop in reversed(hops):
        if not hop:
            continue
        if _ip(hop) is None:
            return peer  # a garbled header: the proxy itself is the best we know
        if not is_trusted(hop):
            return hop
    return peer


def client_bucket(request: Request) -> str:
    """The rate-limit bucket of the client: its address, or its /64 for IPv6 (one
    subscriber line gets a whole /64, so counting addresses would count nothing)."""
    address = client_address(request)
    ip = _ip(address)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip) if ip is not None else address

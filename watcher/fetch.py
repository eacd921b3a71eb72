"""Fetching one feed over HTTP with httpx: conditional GET, caps and clear errors.

Redirects are followed here, not by httpx, so that every hop is counted, a loop
is named as a loop, and the size cap and timeouts apply to the final body. The
body is streamed (decompressed as it arrives) and the read stops at the cap, so a
huge or gzip-bombed feed never sits in memory whole.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import httpx

from sorawatch.errors import FetchError
from sorawatch.retry_after import parse_retry_after
from sorawatch.settings import WatcherSettings
from sorawatch.watcher.deadline import bounded_transport, until

ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml, application/feed+json, "
    "application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, */*;q=0.5"
)
REDIRECTS = (301, 302, 303, 307, 308)
# A slow-drip server resets the read timeout with every byte; this bounds the whole
# fetch instead, as a multiple of the read timeout.
TOTAL_READS = 3
# The body is decoded by httpx, so these no longer describe what we hand on.
_HOP_HEADERS = ("content-encoding", "content-length", "transfer-encoding")


@dataclass(frozen=True, slots=True)
class Validators:
    """What a server gave us to make the next request conditional."""

    etag: str | None = None
    last_modified: str | None = None

    def headers(self) -> dict[str, str]:
        out = {}
        if self.etag:
            out["If-None-Match"] = self.etag
        if self.last_modified:
            out["If-Modified-Since"] = self.last_modified
        return out


@dataclass(frozen=True, slots=True)
class FetchResult:
    """A fetched feed: ``not_modified`` (304, empty body) or a body with its headers."""

    url: str  # the URL asked for
    final_url: str  # after redirects
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    validators: Validators = field(default_factory=Validators)
    seconds: float = 0.0

    @property
    def not_modified(self) -> bool:
        return self.status == 304


def make_client(settings: WatcherSettings) -> httpx.Client:
    """The one HTTP client a watcher process shares across threads and feeds."""
    timeout = httpx.Timeout(
        connect=settings.connect_timeout,
        read=settings.read_timeout,
        write=settings.read_timeout,
        pool=settings.connect_timeout,
    )
    return httpx.Client(
        timeout=timeout,
        follow_redirects=False,
        headers={"User-Agent": settings.user_agent, "Accept": ACCEPT},
        # Reads bounded by the fetch's deadline (a server dripping its headers).
        transport=bounded_transport(
            httpx.Limits(max_connections=max(10, settings.concurrency * 2))
        ),
        # Only settings configure sorawatch: no proxies or .netrc picked up from the environment.
        trust_env=False,
    )


def fetch(
    client: httpx.Client,
    url: str,
    settings: WatcherSettings,
    validators: Validators | None = None,
) -> FetchResult:
    """GET ``url`` (conditionally, given ``validators``), following at most
    ``settings.max_redirects`` redirects and reading at most ``settings.max_bytes``.

    Raises FetchError with ``kind`` one of ``timeout``, ``connect``, ``http``
    (with ``status`` and ``retry_after``), ``too_large``, ``redirects``,
    ``protocol`` or ``invalid_url``.
    """
    started = time.monotonic()
    ends = started + settings.connect_timeout + TOTAL_READS * settings.read_timeout
    with until(ends):
        return _fetch(client, url, settings, validators, started, ends)


def _fetch(
    client: httpx.Client,
    url: str,
    settings: WatcherSettings,
    validators: Validators | None,
    started: float,
    deadline: float,
) -> FetchResult:
    headers = (validators or Validators()).headers()
    seen = [url]
    current = url
    while True:
        _check_url(url, current)
        try:
            with client.stream("GET", current, headers=headers) as response:
                if response.status_code in REDIRECTS and "location" in response.headers:
                    current = _next_hop(url, current, response, seen, settings.max_redirects)
                    continue
                if response.status_code == 304:
                    return FetchResult(
                        url, current, 304, headers=dict(response.headers), seconds=_since(started)
                    )
                if response.status_code >= 400 or response.status_code < 200:
                    raise _status_error(url, response)
                body = _read_capped(url, response, settings.max_bytes, deadline)
                return FetchResult(
                    url,
                    current,
                    response.status_code,
                    body=body,
                    headers=_body_headers(response.headers, current),
                    validators=Validators(
                        etag=response.headers.get("etag"),
                        last_modified=response.headers.get("last-modified"),
                    ),
                    seconds=_since(started),
                )
        except httpx.TimeoutException as exc:
            raise FetchError(url, f"timed out ({type(exc).__name__})", kind="timeout") from None
        except httpx.ConnectError as exc:
            raise FetchError(url, f"cannot connect: {exc}", kind="connect") from None
        except (httpx.RemoteProtocolError, httpx.DecodingError) as exc:
            raise FetchError(url, f"bad HTTP response: {exc}", kind="protocol") from None
        except httpx.TransportError as exc:
            raise FetchError(url, f"transport error: {exc}", kind="connect") from None


def _check_url(url: str, current: str) -> None:
    parts = urlsplit(current)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise FetchError(url, f"not an http(s) URL: {current[:200]!r}", kind="invalid_url")


def _next_hop(url: str, current: str, response: httpx.Response, seen: list[str], cap: int) -> str:
    target = urljoin(current, response.headers["location"])
    if target in seen:
        raise FetchError(
            url, f"redirect loop: {' -> '.join([*seen, target])[:500]}", kind="redirects"
        )
    seen.append(target)
    if len(seen) - 1 > cap:
        raise FetchError(url, f"more than {cap} redirects (last: {target[:200]})", kind="redirects")
    return target


def _status_error(url: str, response: httpx.Response) -> FetchError:
    status = response.status_code
    retry_after = None
    if status in (429, 503):
        retry_after = parse_retry_after(response.headers.get("retry-after"))
    reason = response.reason_phrase or "error"
    extra = f", retry after {retry_after:.0f} s" if retry_after is not None else ""
    return FetchError(
        url, f"HTTP {status} {reason}{extra}", kind="http", status=status, retry_after=retry_after
    )


def _read_capped(url: str, response: httpx.Response, cap: int, deadline: float) -> bytes:
    declared = response.headers.get("content-length", "")
    # Content-Length counts encoded bytes; with gzip the decoded body may still be larger.
    if declared.isdigit() and int(declared) > cap:
        raise FetchError(
            url, f"body of {int(declared)} bytes exceeds the cap of {cap} bytes", kind="too_large"
        )
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > cap:
            raise FetchError(url, f"body exceeds the cap of {cap} bytes", kind="too_large")
        if time.monotonic() > deadline:
            raise FetchError(url, "timed out reading the body (too slow)", kind="timeout")
        chunks.append(chunk)
    return b"".join(chunks)


def _body_headers(headers: Mapping[str, str], final_url: str) -> dict[str, str]:
    out = {k.lower(): v for k, v in headers.items() if k.lower() not in _HOP_HEADERS}
    # feedparser resolves relative links against Content-Location.
    out.setdefault("content-location", final_url)
    return out


def _since(started: float) -> float:
    return round(time.monotonic() - started, 6)

"""A little threaded HTTP server on 127.0.0.1 that serves feeds the way real servers do.

Per path: a body, a status, headers, ETag / Last-Modified with conditional GET
(or ignoring it), gzip, a delay, a redirect, or a generated body of any size.
It records every request (path and headers) so tests can check what was sent.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str = "application/rss+xml; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    honour_conditional: bool = True
    gzip: bool = False
    delay: float = 0.0  # seconds before answering
    redirect: str | None = None  # Location; status defaults to 302
    generate: int | None = None  # stream this many bytes, chunked, no Content-Length


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]


class FeedServer:
    """``with FeedServer() as server: server.route("/a.xml", Route(...)); server.url("/a.xml")``"""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server._handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FeedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def route(self, path: str, route: Route) -> str:
        with self._lock:
            self.routes[path] = route
        return self.url(path)

    def hits(self, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.requests.append(
                Request(handler.path, {k.lower(): v for k, v in handler.headers.items()})
            )
            route = self.routes.get(handler.path)
        if route is None:
            self._send(handler, 404, b"not found", {"Content-Type": "text/plain"})
            return
        if route.delay:
            time.sleep(route.delay)
        if route.redirect is not None:
            status = route.status if 300 <= route.status < 400 else 302
            self._send(handler, status, b"", {"Location": route.redirect})
            return
        headers = {"Content-Type": route.content_type, **route.headers}
        if route.etag:
            headers["ETag"] = route.etag
        if route.last_modified:
            headers["Last-Modified"] = route.last_modified
        if route.honour_conditional and route.status == 200 and self._not_modified(handler, route):
            self._send(handler, 304, b"", {k: v for k, v in headers.items() if k != "Content-Type"})
            return
        if route.generate is not None:
            self._stream(handler, route.status, headers, route.generate)
            return
        body = route.body
        if route.gzip and "gzip" in handler.headers.get("Accept-Encoding", ""):
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        self._send(handler, route.status, body, headers)

    @staticmethod
    def _not_modified(handler: BaseHTTPRequestHandler, route: Route) -> bool:
        inm = handler.headers.get("If-None-Match")
        ims = handler.headers.get("If-Modified-Since")
        if route.etag and inm is not None:
            return inm == route.etag
        return bool(route.last_modified and ims == route.last_modified)

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str]
    ) -> None:
        try:
            handler.send_response(status)
            for name, value in headers.items():
                handler.send_header(name, value)
            if status != 304:
                handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            if status != 304:
                handler.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test): nothing to do

    @staticmethod
    def _stream(
        handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str], size: int
    ) -> None:
        try:
            handler.send_response(status)
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.send_header("Transfer-Encoding", "chunked")
            handler.end_headers()
            for chunk in _chunks(size):
                handler.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            handler.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading at its cap, as it should
        handler.close_connection = True


def _chunks(size: int, chunk: int = 64 * 1024) -> Iterator[bytes]:
    head = b'<?xml version="1.0"?><rss version="2.0"><channel><title>big</title><description>'
    yield head
    sent = len(head)
    while sent < size:
        n = min(chunk, size - sent)
        yield b"x" * n
        sent += n

"""A real HTTP receiver on 127.0.0.1 for webhooks: records requests, answers scripts.

``script(path, [500, 500, 200])`` answers those statuses in turn (the last one
repeats); an entry may be ``(status, headers)`` or ``(status, headers, delay)``.
``verify_with(path, secret)`` checks each request to ``path`` with the
``standardwebhooks`` library as it arrives, as a consumer would: the signed timestamp
is then judged against the time of receipt, not against whenever a slow test gets to
look at it (the library refuses one more than 5 minutes old).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

Answer = int | tuple[int, dict[str, str]] | tuple[int, dict[str, str], float]


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    verified: str | None = None  # with ``verify_with``: "ok", or why the library refused it


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet tests

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        owner = self.server.owner
        status, headers, delay = owner._next(self.path)
        got = {k.lower(): v for k, v in self.headers.items()}
        owner._record(Request("POST", self.path, got, body, owner._verify(self.path, body, got)))
        if delay:
            time.sleep(delay)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    do_PUT = do_POST


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 drops SYNs when many webhooks connect at once
    owner: HttpReceiver


class HttpReceiver:
    """``with HttpReceiver() as rx:``; ``rx.url("/hook")``, ``rx.requests``."""

    def __init__(self) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self.port = int(self._server.server_address[1])
        self._lock = threading.Lock()
        self._requests: list[Request] = []
        self._scripts: dict[str, list[tuple[int, dict[str, str], float]]] = {}
        self._secrets: dict[str, str] = {}
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> HttpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, path: str, answers: list[Answer]) -> None:
        """Answer the requests to ``path`` with ``answers`` in turn; the last repeats."""
        norm: list[tuple[int, dict[str, str], float]] = []
        for a in answers:
            if isinstance(a, int):
                norm.append((a, {}, 0.0))
            elif len(a) == 2:
                norm.append((a[0], a[1], 0.0))
            else:
                norm.append((a[0], a[1], a[2]))
        with self._lock:
            self._scripts[path] = norm

    def verify_with(self, path: str, secret: str) -> None:
        """Verify the Standard Webhooks signature of each request to ``path`` on arrival."""
        with self._lock:
            self._secrets[path] = secret

    def _verify(self, path: str, body: bytes, headers: dict[str, str]) -> str | None:
        with self._lock:
            secret = self._secrets.get(path.split("?", 1)[0])
        if secret is None:
            return None
        try:
            Webhook(secret).verify(body, headers)
        except WebhookVerificationError as exc:
            return str(exc)
        return "ok"

    def _next(self, path: str) -> tuple[int, dict[str, str], float]:
        with self._lock:
            answers = self._scripts.get(path.split("?", 1)[0])
            if not answers:
                return 200, {}, 0.0
            return answers.pop(0) if len(answers) > 1 else answers[0]

    def _record(self, request: Request) -> None:
        with self._lock:
            self._requests.append(request)

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    def to(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path.split("?", 1)[0] == path]

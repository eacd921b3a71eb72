"""Fault 5: a ``sorawatch watch`` SIGKILLed between fetching and appending, and two
watchers racing on the same feeds.

One feed's server sends half its body and then stalls; the watcher is killed
while it waits for the rest (it has fetched other feeds and appended their items
meanwhile). It is restarted with a second watcher beside it; the stall is gone.
Promise: every story is in the log exactly once, and no alert is raised twice.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from sorawatch.events import EventLog
from sorawatch.keys import Keys
from sorawatch.projections import alerts
from tests.faults.news import STORIES, WEATHER, feeds_toml, rss
from tests.faults.procs import Proc, wait_for, write_config
from tests.reliability import Figures

pytestmark = [pytest.mark.fault, pytest.mark.slow]

PREFIX = "wk"


class StallingFeeds:
    """Feeds on 127.0.0.1; a stalled path sends half its body, then waits until
    ``unstall()`` before sending the rest."""

    def __init__(self) -> None:
        self.bodies: dict[str, bytes] = {}
        self.stalled: set[str] = set()
        self.mid_body = threading.Event()  # a client is waiting on a stalled body
        self._go = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                body = owner.bodies.get(self.path, b"")
                self.send_response(200)
                self.send_header("content-type", "application/rss+xml; charset=utf-8")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                if self.path in owner.stalled:
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    owner.mid_body.set()
                    owner._go.wait(30)
                    body = body[len(body) // 2 :]
                with contextlib.suppress(OSError):  # the client was killed mid-body
                    self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> StallingFeeds:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._go.set()
        self._server.shutdown()
        self._server.server_close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def unstall(self) -> None:
        self.stalled.clear()
        self._go.set()


def test_watcher_killed_mid_fetch_and_racing_watchers(
    redis_url: str, redis: Redis, tmp_path: Path, reliability: Figures
) -> None:
    keys = Keys(PREFIX)
    paths = {"a": "/a.xml", "b": "/b.xml", "c": "/c.xml"}
    procs: list[Proc] = []
    with StallingFeeds() as feeds:
        for path in paths.values():
            feeds.bodies[path] = rss([WEATHER])
        config = write_config(
            tmp_path / "sorawatch.toml",
            redis_url,
            PREFIX,
            tmp_path / "data",
            # A short lease, so the killed watcher's claim on the stalled feed lapses soon.
            "[watcher]\nlease = 5\nread_timeout = 60\n\n"
            '[log]\nlevel = "WARNING"\n\n'
            + feeds_toml({n: feeds.url(p) for n, p in paths.items()}),
        )
        assert Proc(config, redis_url, "watch", "--once", log=tmp_path / "b.log").wait(60) == 0

        feeds.bodies[paths["a"]] = rss([STORIES[0], STORIES[1], WEATHER])
        feeds.bodies[paths["b"]] = rss([STORIES[2], STORIES[3], WEATHER])
        feeds.bodies[paths["c"]] = rss([STORIES[4], WEATHER])
        feeds.stalled.add(paths["a"])
        try:
            victim = Proc(config, redis_url, "watch", log=tmp_path / "w1.log")
            procs.append(victim)
            wait_for(feeds.mid_body.is_set, 60, "the watcher to be mid-body on the stalled feed")
            victim.kill()  # fetched half a feed; nothing of it appended
            killed_with = {
                e.data["url"] for _s, e in EventLog(redis, keys).read() if e.type == "item.seen"
            }
            feeds.unstall()
            procs += [
                Proc(config, redis_url, "watch", log=tmp_path / "w2.log"),
                Proc(config, redis_url, "watch", log=tmp_path / "w3.log"),
            ]
            urls = {s[1] for s in STORIES}

            def seen() -> Counter[str]:
                return Counter(
                    e.data["url"]
                    for _s, e in EventLog(redis, keys).read()
                    if e.type == "item.seen" and e.data["url"] in urls
                )

            wait_for(lambda: set(seen()) == urls, 60, "every story in the log", poll=0.2)
            time.sleep(1.0)  # let the racing watchers finish what they are doing
        finally:
            for proc in procs:
                proc.stop()

    counts = seen()
    assert set(counts) == urls, "a story was lost"
    doubled = {u: n for u, n in counts.items() if n > 1}
    assert not doubled, f"stories in the log twice: {doubled}"
    assert STORIES[0][1] not in killed_with  # the stalled feed really was cut mid-fetch
    raised = [a for a in alerts.recent(redis, keys, limit=1000) if not a.get("baseline")]
    ids = [a["alert_id"] for a in raised]
    assert len(ids) == len(set(ids))
    reliability.fault(
        "watcher SIGKILL mid-fetch, then two watchers racing",
        injected=1,
        expected=len(urls),
        delivered=len(counts),
        lost=len(urls - set(counts)),
        duplicated=sum(n - 1 for n in counts.values()),
        bound=0,
    )

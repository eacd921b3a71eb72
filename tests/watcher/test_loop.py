"""The forever loop: it polls what is due, stops when told, and outlives a Redis restart."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from sorawatch.events import EventLog
from sorawatch.keys import Keys
from sorawatch.settings import FeedSettings, Settings
from sorawatch.store import connect
from sorawatch.testing.feeds import FeedServer, Route
from sorawatch.testing.redis import RedisServer
from sorawatch.watcher.loop import run_forever
from sorawatch.watcher.poll import PassSummary, Poller
from tests.watcher.recorded import recorded


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_loop_polls_due_feeds_and_stops_between_polls(
    feed_server: FeedServer, make_poller: Callable[..., Poller]
) -> None:
    url = feed_server.route("/f.xml", Route(recorded("rss2_en.xml"), etag='"a"'))
    # Below the settings minimum on purpose: the test should see two polls quickly.
    feed = FeedSettings(url=url, name="F", interval=1)
    poller = make_poller(feed)
    stop = threading.Event()
    passes: list[PassSummary] = []

    def on_pass(summary: PassSummary) -> None:
        passes.append(summary)
        if len(passes) == 2:
            stop.set()

    thread = threading.Thread(
        target=run_forever, args=(poller, [feed], stop), kwargs={"on_pass": on_pass}
    )
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert [p.outcomes[0].outcome for p in passes] == ["ok", "not_modified"]
    assert len(feed_server.hits("/f.xml")) == 2


@pytest.mark.fault
def test_loop_survives_a_redis_restart(
    tmp_path: Path, feed_server: FeedServer, watch_settings: Settings, client: httpx.Client
) -> None:
    from sorawatch.watcher.classify import default_classifier

    server = RedisServer(tmp_path / "redis").start()
    try:
        url = feed_server.route("/f.xml", Route(recorded("rss2_en.xml")))
        feed = FeedSettings(url=url, name="F", interval=1)
        settings = dataclasses.replace(watch_settings, feeds=(feed,)).with_redis_url(server.url)
        redis = connect(settings)
        poller = Poller(settings, redis, Keys(), client, default_classifier())
        stop = threading.Event()
        thread = threading.Thread(target=run_forever, args=(poller, [feed], stop))
        thread.start()
        try:
            assert wait_for(lambda: len(feed_server.hits("/f.xml")) >= 1)
            server.kill()
            time.sleep(0.5)
            server.start()
            hits = len(feed_server.hits("/f.xml"))
            assert wait_for(lambda: len(feed_server.hits("/f.xml")) >= hits + 2)
            assert thread.is_alive()
        finally:
            stop.set()
            thread.join(timeout=60)
        assert not thread.is_alive()
        assert EventLog(redis, Keys()).count() == 2  # the AOF kept them; no doubles after
        redis.close()
    finally:
        server.stop()

"""What one poll leaves in Redis now that it is written in few round trips: item state
forgotten after FORGET_AFTER_DAYS, the lease released even after Redis lost its scripts,
health and metrics recorded with it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from redis import Redis

from sorawatch import metrics
from sorawatch.keys import Keys
from sorawatch.testing.feeds import FeedServer, Route
from sorawatch.watcher.detect import FORGET_AFTER_DAYS
from sorawatch.watcher.health import Schedule
from sorawatch.watcher.poll import Poller
from tests.watcher.conftest import feed
from tests.watcher.recorded import recorded


def test_items_long_gone_from_the_feed_are_forgotten_and_recent_ones_kept(
    feed_server: FeedServer, redis: Redis, make_poller: Callable[..., Poller]
) -> None:
    url = feed_server.route("/f.xml", Route(recorded("rss2_en.xml")))
    f = feed(url)
    today = int(time.time() // 86400)
    key = Keys().feed_items(url)
    redis.hset(
        key,
        mapping={
            "gone-long-ago": json.dumps({"h": "x", "e": None, "d": today - FORGET_AFTER_DAYS - 1}),
            "gone-lately": json.dumps({"h": "y", "e": "y", "d": today - 2}),
            "unreadable": "not json",
        },
    )
    assert make_poller(f).poll(f, force=True).outcome == "ok"
    fields = {k.decode() for k in redis.hkeys(key)}
    assert "gone-long-ago" not in fields
    assert "unreadable" not in fields
    assert "gone-lately" in fields
    assert len(fields) == 3 + 1  # the feed's three items and the one kept
    for name in fields - {"gone-lately"}:
        assert json.loads(redis.hget(key, name))["d"] == today


def test_a_poll_after_redis_lost_its_scripts_still_releases_its_lease(
    feed_server: FeedServer, redis: Redis, make_poller: Callable[..., Poller]
) -> None:
    url = feed_server.route("/f.xml", Route(recorded("rss2_en.xml"), etag='"a"'))
    f = feed(url)
    poller = make_poller(f)
    assert poller.poll(f, force=True).outcome == "ok"
    redis.script_flush()
    assert poller.poll(f, force=True).outcome == "not_modified"
    assert redis.exists(Keys().feed_lease(url)) == 0
    health = Schedule(redis, Keys()).health(f)
    assert health.last_status == 304
    assert health.first_ok is not None
    counters = metrics.read_all(redis, Keys())
    assert counters["polls_total|outcome=not_modified"] == 1
    assert counters["poll_seconds_count"] == 2
    assert counters["items_parsed_total"] == 3
    assert poller.poll(f, force=True).outcome == "not_modified"  # free again

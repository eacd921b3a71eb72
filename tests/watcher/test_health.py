"""Leases, the due set and backoff, against a real Redis."""

from __future__ import annotations

import random

from redis import Redis

from sorawatch.keys import Keys
from sorawatch.settings import WatcherSettings
from sorawatch.watcher.health import Schedule, backoff
from tests.watcher.conftest import feed


def test_lease_is_exclusive_and_released_only_by_its_owner(redis: Redis) -> None:
    schedule = Schedule(redis, Keys())
    url = "http://127.0.0.1:1/a"
    token = schedule.claim(url, ttl=30)
    assert token is not None
    assert schedule.claim(url, ttl=30) is None
    assert not schedule.release(url, "someone-else")
    assert schedule.claim(url, ttl=30) is None
    assert schedule.release(url, token)
    assert schedule.claim(url, ttl=30) is not None


def test_claim_respects_the_due_time(redis: Redis) -> None:
    schedule = Schedule(redis, Keys())
    a, b = feed("http://127.0.0.1:1/a"), feed("http://127.0.0.1:1/b")
    schedule.ensure([a, b], now=1000.0)
    redis.zadd(Keys().feeds_due, {b.url: 5000.0})
    schedule.ensure([a, b], now=2000.0)  # NX: b keeps its later due time
    assert [f.url for f in schedule.due([a, b], now=1500.0)] == [a.url]
    assert schedule.claim(b.url, ttl=30, now=1500.0) is None  # not due yet
    assert schedule.claim(a.url, ttl=30, now=1500.0) is not None
    assert schedule.next_due([a, b]) == 1000.0


def test_due_feeds_come_most_overdue_first(redis: Redis) -> None:
    schedule = Schedule(redis, Keys())
    feeds = [feed(f"http://127.0.0.1:1/{i}") for i in range(5)]
    redis.zadd(Keys().feeds_due, {f.url: 100.0 - i for i, f in enumerate(feeds)})
    redis.zadd(Keys().feeds_due, {"http://127.0.0.1:1/not-configured": 0.0})
    assert [f.url for f in schedule.due(feeds, now=200.0)] == [f.url for f in reversed(feeds)]


def test_failures_back_off_exponentially_up_to_the_cap_and_honour_retry_after(redis: Redis) -> None:
    settings = WatcherSettings(jitter=0.0, max_backoff=3600)
    rng = random.Random(1)
    delays = [backoff(900, n, settings, rng) for n in range(1, 10)]
    assert delays[:4] == [60, 120, 240, 480]
    assert delays[-1] == 3600
    assert backoff(900, 1, settings, rng, retry_after=600) == 600
    assert backoff(900, 1, settings, rng, retry_after=10**7) == 3600


def test_failure_and_success_are_recorded(redis: Redis) -> None:
    schedule = Schedule(redis, Keys())
    f = feed("http://127.0.0.1:1/a", "A")
    settings = WatcherSettings(jitter=0.0)
    rng = random.Random(1)
    for n in (1, 2):
        count = schedule.record_failure(
            f, now=1000.0, error="HTTP 500 Internal Server Error", kind="http", status=500,
            seconds=0.1, retry_after=None, settings=settings, rng=rng,
        )  # fmt: skip
        assert count == n
    health = schedule.health(f)
    assert (health.failures, health.last_error_kind, health.last_status) == (2, "http", 500)
    assert health.last_ok is None
    assert health.first_ok is None
    assert not schedule.has_succeeded(f.url)

    first = schedule.record_success(
        f, now=2000.0, next_due=2900.0, status=200, items=3, events=2, seconds=0.2
    )
    again = schedule.record_success(
        f, now=3000.0, next_due=3900.0, status=304, items=None, events=0, seconds=0.1
    )
    assert (first, again) == (True, False)
    health = schedule.health(f)
    assert health.failures == 0
    assert health.items_seen == 3
    assert health.events_total == 2
    assert health.last_status == 304
    assert health.first_ok == "1970-01-01T00:33:20Z"
    assert health.next_due == "1970-01-01T01:05:00Z"
    assert redis.zscore(Keys().feeds_due, f.url) == 3900.0

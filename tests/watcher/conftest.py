"""Watcher fixtures: a feed server on 127.0.0.1 and a Poller wired to the test Redis."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

import httpx
import pytest
from redis import Redis

from sorawatch.keys import Keys
from sorawatch.settings import FeedSettings, Settings, WatcherSettings
from sorawatch.testing.feeds import FeedServer
from sorawatch.watcher.fetch import make_client
from sorawatch.watcher.poll import Poller

# Short timeouts so the timeout tests are quick; no jitter so due times are exact.
FAST = WatcherSettings(
    interval=60,
    jitter=0.0,
    connect_timeout=1.0,
    read_timeout=0.5,
    max_backoff=3600,
    lease=30,
    concurrency=4,
)


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    with FeedServer() as server:
        yield server


@pytest.fixture
def watch_settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, watcher=FAST)


@pytest.fixture
def client(watch_settings: Settings) -> Iterator[httpx.Client]:
    with make_client(watch_settings.watcher) as c:
        yield c


def feed(url: str, name: str = "Test feed", lang: str | None = None) -> FeedSettings:
    return FeedSettings(url=url, name=name, lang=lang)


@pytest.fixture
def make_poller(
    watch_settings: Settings, redis: Redis, client: httpx.Client
) -> Callable[..., Poller]:
    from sorawatch.watcher.classify import default_classifier

    classifier = default_classifier()

    def build(*feeds: FeedSettings, clock: Callable[[], float] | None = None) -> Poller:
        settings = dataclasses.replace(watch_settings, feeds=tuple(feeds))
        kwargs = {"clock": clock} if clock else {}
        return Poller(settings, redis, Keys(settings.redis.prefix), client, classifier, **kwargs)

    return build

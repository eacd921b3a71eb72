"""Fetching over real HTTP on 127.0.0.1: validators, gzip, caps, redirects, errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from sorawatch.errors import FetchError
from sorawatch.retry_after import parse_retry_after
from sorawatch.settings import Settings
from sorawatch.testing.feeds import FeedServer, Route
from sorawatch.testing.ports import free_port
from sorawatch.watcher.fetch import Validators, fetch
from tests.watcher.recorded import recorded

RSS = recorded("rss2_en.xml")


def test_conditional_get_sends_validators_and_gets_304(
    feed_server: FeedServer, client: httpx.Client, watch_settings: Settings
) -> None:
    url = feed_server.route(
        "/f.xml", Route(RSS, etag='"v1"', last_modified="Mon, 09 Dec 2024 18:00:00 GMT")
    )
    first = fetch(client, url, watch_settings.watcher)
    assert first.status == 200
    assert first.body == RSS
    assert first.validators == Validators('"v1"', "Mon, 09 Dec 2024 18:00:00 GMT")

    second = fetch(client, url, watch_settings.watcher, first.validators)
    assert second.not_modified
    assert second.body == b""
    sent = feed_server.hits("/f.xml")[-1].headers
    assert sent["if-none-match"] == '"v1"'
    assert sent["if-modified-since"] == "Mon, 09 Dec 2024 18:00:00 GMT"
    assert sent["user-agent"].startswith("sorawatch/")
    assert "gzip" in sent["accept-encoding"]


def test_gzip_body_is_decoded(
    feed_server: FeedServer, client: httpx.Client, watch_settings: Settings
) -> None:
    url = feed_server.route("/gz.xml", Route(RSS, gzip=True))
    result = fetch(client, url, watch_settings.watcher)
    assert result.body == RSS
    assert "content-encoding" not in result.headers  # what we hand feedparser is decoded


def test_redirects_are_followed_up_to_the_cap(
    feed_server: FeedServer, client: httpx.Client, watch_settings: Settings
) -> None:
    final = feed_server.route("/final.xml", Route(RSS))
    feed_server.route("/r1", Route(redirect="/r2", status=301))
    feed_server.route("/r2", Route(redirect=final, status=308))
    result = fetch(client, feed_server.url("/r1"), watch_settings.watcher)
    assert result.final_url == final
    assert result.body == RSS

    for i in range(7):
        feed_server.route(f"/hop{i}", Route(redirect=f"/hop{i + 1}"))
    feed_server.route("/hop7", Route(RSS))
    with pytest.raises(FetchError) as err:
        fetch(client, feed_server.url("/hop0"), watch_settings.watcher)
    assert err.value.kind == "redirects"
    assert "more than 5 redirects" in str(err.value)


def test_redirect_loop_is_named(
    feed_server: FeedServer, client: httpx.Client, watch_settings: Settings
) -> None:
    feed_server.route("/a", Route(redirect="/b"))
    feed_server.route("/b", Route(redirect="/a"))
    with pytest.raises(FetchError) as err:
        fetch(client, feed_server.url("/a"), watch_settings.watcher)
    assert err.value.kind == "redirects"
    assert "redirect loop" in str(err.value)
    assert len(feed_server.hits("/a")) == 1


def test_streamed_body_stops_at_the_cap(
    feed_server: FeedServer, client: httpx.Client, watch_settings: Settings
) -> None:
    url = feed_server.route("/big.xml", Route(generate=6 * 1024 * 1024))
    with pytest.raises(FetchError) as err:
        fetch(client, url, watch_settings.watcher)
    assert err.value.kind == "too_large"
    assert str(5 * 1024 * 1024) in str(err.value)


def test_declared_length_over_the_cap_is_refused_before_reading(
    feed_server: FeedServer, client: httpx.Client, watch_settings: Settings
) -> None:
    url = feed_server.route("/big2.xml", Route(b"x" * (6 * 1024 * 1024)))
    with pytest.raises(FetchError) as err:
        fetch(client, url, watch_settings.watcher)
    assert err.value.kind == "too_large"
    assert "6291456 bytes" in str(err.value)


def test_gzip_bomb_is_capped_on_decoded_size(
    feed_server: FeedServer, client: httpx.Client, watch_settings: Settings
) -> None:
    # 6 MiB of zeros compresses to a few KiB; the cap must count what it inflates to.
    url = feed_server.route("/bomb.xml", Route(b"\0" * (6 * 1024 * 1024), gzip=True))
    with pytest.raises(FetchError) as err:
        fetch(client, url, watch_settings.watcher)
    assert err.value.kind == "too_large"


def test_429_carries_retry_after(
    feed_server: FeedServer, client: httpx.Client, watch_settings: Settings
) -> None:
    url = feed_server.route(
        "/busy", Route(b"slow down", status=429, headers={"Retry-After": "120"})
    )
    with pytest.raises(FetchError) as err:
        fetch(client, url, watch_settings.watcher)
    assert (err.value.kind, err.value.status, err.value.retry_after) == ("http", 429, 120.0)
    assert "HTTP 429" in str(err.value)


def test_500_and_404_are_http_errors(
    feed_server: FeedServer, client: httpx.Client, watch_settings: Settings
) -> None:
    url = feed_server.route("/boom", Route(b"oops", status=500))
    with pytest.raises(FetchError) as err:
        fetch(client, url, watch_settings.watcher)
    assert (err.value.kind, err.value.status, err.value.retry_after) == ("http", 500, None)
    with pytest.raises(FetchError) as err:
        fetch(client, feed_server.url("/missing"), watch_settings.watcher)
    assert err.value.status == 404


def test_slow_server_times_out(
    feed_server: FeedServer, client: httpx.Client, watch_settings: Settings
) -> None:
    url = feed_server.route("/slow", Route(RSS, delay=2.0))
    with pytest.raises(FetchError) as err:
        fetch(client, url, watch_settings.watcher)
    assert err.value.kind == "timeout"


def test_refused_connection_is_a_connect_error(
    client: httpx.Client, watch_settings: Settings
) -> None:
    with pytest.raises(FetchError) as err:
        fetch(client, f"http://127.0.0.1:{free_port()}/feed.xml", watch_settings.watcher)
    assert err.value.kind == "connect"


def test_retry_after_as_seconds_or_http_date() -> None:
    now = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("30") == 30.0
    assert parse_retry_after(format_datetime(now + timedelta(minutes=5), usegmt=True), now) == 300
    assert parse_retry_after(format_datetime(now - timedelta(minutes=5), usegmt=True), now) == 0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None

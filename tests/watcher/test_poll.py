"""Polling end to end: real feeds over HTTP, the real classifier, a real Redis event log."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from redis import Redis

from sorawatch import metrics
from sorawatch.events import Event, EventLog, job_id, queue
from sorawatch.keys import Keys
from sorawatch.testing.feeds import FeedServer, Route
from sorawatch.watcher.health import Schedule
from sorawatch.watcher.poll import Poller
from tests.watcher.conftest import feed
from tests.watcher.recorded import recorded

LM = "Mon, 09 Dec 2024 18:00:00 GMT"

NEW_ITEM = b"""    <item>
      <title>OpenAI brings Sora to Europe and the UK</title>
      <link>https://openai.com/index/sora-europe/</link>
      <guid isPermaLink="false">openai-sora-europe</guid>
      <pubDate>Fri, 28 Feb 2025 17:00:00 GMT</pubDate>
      <description>OpenAI's Sora video model is now available in the European Union and the United Kingdom.</description>
    </item>
    <item>
      <title>Sora and Riku race across Destiny Islands in new Kingdom Hearts clip</title>
      <link>https://games.example.com/kh-riku</link>
      <guid isPermaLink="false">kh-riku</guid>
      <description>The Keyblade hero Sora and his friend Riku return in a Square Enix trailer.</description>
    </item>
  </channel>"""


def events(redis: Redis) -> list[Event]:
    return [e for _, e in EventLog(redis, Keys()).read()]


def test_first_poll_is_a_baseline_and_a_304_appends_nothing(
    feed_server: FeedServer, redis: Redis, make_poller: Callable[..., Poller]
) -> None:
    url = feed_server.route(
        "/openai.xml", Route(recorded("rss2_en.xml"), etag='"a"', last_modified=LM)
    )
    f = feed(url, "OpenAI News")
    poller = make_poller(f)

    first = poller.poll(f, force=True)
    assert (first.outcome, first.items, first.events, first.baseline) == ("ok", 3, 2, True)
    got = events(redis)
    assert [e.type for e in got] == ["item.seen", "item.seen"]
    assert {e.data["item_key"] for e in got} == {"openai-sora-is-here", "openai-sora-turbo"}
    for e in got:
        assert e.data["baseline"] is True
        assert e.data["feed"] == url
        assert e.data["source"] == "OpenAI News"
        assert e.data["lang"] == "en"
        assert isinstance(e.data["topics"], list)
        assert isinstance(e.data["facts"], dict)
    assert "Kingdom Hearts" not in str([e.data["title"] for e in got])
    jobs = queue("changes", redis).jobs
    assert sorted(j.id for j in jobs) == sorted("sw-" + job_id("changes", e.id) for e in got)
    assert {j.func_name for j in jobs} == {"sorawatch.workers.jobs.process_change"}

    second = poller.poll(f, force=True)
    assert second.outcome == "not_modified"
    sent = feed_server.hits("/openai.xml")[-1].headers
    assert sent["if-none-match"] == '"a"'
    assert sent["if-modified-since"] == LM
    assert len(events(redis)) == 2
    assert queue("changes", redis).count == 2
    counters = metrics.read_all(redis, Keys())
    assert counters["polls_total|outcome=ok"] == 1
    assert counters["polls_total|outcome=not_modified"] == 1
    assert counters["items_parsed_total"] == 3


def test_a_server_ignoring_validators_appends_nothing_new(
    feed_server: FeedServer, redis: Redis, make_poller: Callable[..., Poller]
) -> None:
    route = Route(recorded("rss2_en.xml"), etag='"a"', honour_conditional=False)
    url = feed_server.route("/ignores.xml", route)
    f = feed(url)
    poller = make_poller(f)
    assert poller.poll(f, force=True).events == 2
    again = poller.poll(f, force=True)
    assert (again.outcome, again.events) == ("ok", 0)
    assert feed_server.hits("/ignores.xml")[-1].headers["if-none-match"] == '"a"'
    assert len(events(redis)) == 2


def test_new_revised_and_irrelevant_items(
    feed_server: FeedServer, redis: Redis, make_poller: Callable[..., Poller]
) -> None:
    body = recorded("rss2_en.xml")
    url = feed_server.route("/f.xml", Route(body))
    f = feed(url)
    poller = make_poller(f)
    poller.poll(f, force=True)
    assert len(events(redis)) == 2

    changed = body.replace(
        b"<title>Sora is here</title>", b"<title>Sora is here for everyone</title>"
    )
    changed = changed.replace(b"  </channel>", NEW_ITEM, 1)
    feed_server.route("/f.xml", Route(changed))
    outcome = poller.poll(f, force=True)
    assert (outcome.items, outcome.events, outcome.baseline) == (5, 2, False)
    seen, revised = events(redis)[2:]
    assert seen.type == "item.seen"
    assert seen.data["item_key"] == "openai-sora-europe"
    assert seen.data["baseline"] is False
    assert revised.type == "item.revised"
    assert revised.data["item_key"] == "openai-sora-is-here"
    assert revised.data["title"] == "Sora is here for everyone"
    first = next(e for e in events(redis) if e.data["item_key"] == "openai-sora-is-here")
    assert revised.data["previous_hash"] == first.data["content_hash"]
    assert revised.data["content_hash"] != first.data["content_hash"]

    assert poller.poll(f, force=True).events == 0  # the same again: nothing
    assert len(events(redis)) == 4


class Counting:
    """The real classifier, counting its calls."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = 0

    def classify(self, title: str, summary: str, lang: str, first_party: bool = False) -> Any:
        self.calls += 1
        return self.inner.classify(title, summary, lang, first_party)


def test_unchanged_items_are_not_classified_again(
    feed_server: FeedServer, make_poller: Callable[..., Poller]
) -> None:
    url = feed_server.route("/f.xml", Route(recorded("rss2_en.xml")))
    f = feed(url)
    poller = make_poller(f)
    counting = Counting(poller.classifier)
    poller.classifier = counting
    poller.poll(f, force=True)
    assert counting.calls == 3
    poller.poll(f, force=True)
    assert counting.calls == 3  # the irrelevant Kingdom Hearts item included


def test_every_format_in_both_languages_becomes_events(
    feed_server: FeedServer, redis: Redis, make_poller: Callable[..., Poller]
) -> None:
    names = {
        "rss2_ar.xml": "application/rss+xml",
        "gnews_en.xml": "application/rss+xml",
        "gnews_ar.xml": "application/rss+xml",
        "atom_en.xml": "application/atom+xml",
        "atom_ar.xml": "application/atom+xml",
        "rdf_en.xml": "application/rdf+xml",
        "jsonfeed_en.json": "application/feed+json",
        "jsonfeed_ar.json": "application/feed+json",
    }
    feeds = [
        feed(feed_server.route(f"/{n}", Route(recorded(n), content_type=ct)), n)
        for n, ct in names.items()
    ]
    summary = make_poller(*feeds).run_pass(feeds, force=True)
    assert summary.count("error") == 0, [o.error for o in summary.outcomes]
    got = events(redis)
    by_title = {e.data["title"]: e for e in got}
    lionsgate = by_title["OpenAI partners with Lionsgate to bring Sora to Hollywood studios"]
    assert lionsgate.data["source"] == "Variety"
    assert (
        by_title["OpenAI تتيح سورا في مصر والسعودية والإمارات"].data["source"] == "سكاي نيوز عربية"
    )
    assert "Sora Ventures raises new Bitcoin fund" not in by_title
    assert "سامسونج تكشف عن هاتف جالاكسي الجديد" not in by_title
    langs = {e.data["lang"] for e in got}
    assert langs == {"ar", "en"}
    assert all(e.data["baseline"] is True for e in got)
    assert {e.data["feed"] for e in got} == {f.url for f in feeds}


def test_failures_are_recorded_and_do_not_stop_the_pass(
    feed_server: FeedServer, redis: Redis, make_poller: Callable[..., Poller]
) -> None:
    routes = {
        "/good.xml": Route(recorded("rss2_en.xml")),
        "/busy.xml": Route(b"slow down", status=429, headers={"Retry-After": "1800"}),
        "/boom.xml": Route(b"oops", status=500),
        "/slow.xml": Route(recorded("rss2_en.xml"), delay=2.0),
        "/loop-a.xml": Route(redirect="/loop-b.xml"),
        "/loop-b.xml": Route(redirect="/loop-a.xml"),
        "/huge.xml": Route(generate=6 * 1024 * 1024),
        "/broken.xml": Route(recorded("malformed.xml")),
        "/page.html": Route(recorded("not_a_feed.html"), content_type="text/html"),
        "/good-ar.xml": Route(recorded("rss2_ar.xml")),
    }
    feeds = [feed(feed_server.route(path, route), path) for path, route in routes.items()]
    feeds = [f for f in feeds if not f.url.endswith("/loop-b.xml")]
    now = time.time()
    poller = make_poller(*feeds)
    summary = poller.run_pass(feeds, force=True)

    outcome = {o.name: o for o in summary.outcomes}
    assert outcome["/good.xml"].outcome == outcome["/good-ar.xml"].outcome == "ok"
    assert outcome["/good.xml"].events == 2
    assert outcome["/good-ar.xml"].events == 1
    expected = {
        "/busy.xml": ("http", "HTTP 429"),
        "/boom.xml": ("http", "HTTP 500"),
        "/slow.xml": ("timeout", "timed out"),
        "/loop-a.xml": ("redirects", "redirect loop"),
        "/huge.xml": ("too_large", "exceeds the cap"),
        "/broken.xml": ("parse", "malformed feed"),
        "/page.html": ("parse", "not a feed"),
    }
    schedule = Schedule(redis, Keys())
    for f in feeds:
        health = schedule.health(f)
        if f.name in expected:
            kind, text = expected[f.name]
            assert outcome[f.name].outcome == "error"
            assert (health.failures, health.last_error_kind) == (1, kind), f.name
            assert text in (health.last_error or ""), (f.name, health.last_error)
            assert health.last_ok is None
        else:
            assert health.failures == 0
            assert health.last_ok is not None
            assert health.items_seen > 0
    busy = next(f for f in feeds if f.name == "/busy.xml")
    assert redis.zscore(Keys().feeds_due, busy.url) >= now + 1800  # Retry-After honoured
    assert schedule.health(busy).last_status == 429
    counters = metrics.read_all(redis, Keys())
    assert counters["polls_total|outcome=error"] == 7
    assert counters["fetch_errors_total|kind=parse"] == 2
    assert counters["fetch_errors_total|kind=timeout"] == 1

    # A second failure backs off further than the first.
    boom = next(f for f in feeds if f.name == "/boom.xml")
    first_due = redis.zscore(Keys().feeds_due, boom.url)
    poller.poll(boom, force=True)
    assert schedule.health(boom).failures == 2
    assert redis.zscore(Keys().feeds_due, boom.url) > first_due


def test_a_feed_leased_by_another_watcher_is_skipped(
    feed_server: FeedServer, redis: Redis, make_poller: Callable[..., Poller]
) -> None:
    url = feed_server.route("/f.xml", Route(recorded("rss2_en.xml")))
    f = feed(url)
    token = Schedule(redis, Keys()).claim(url, ttl=30)
    assert token is not None
    assert make_poller(f).poll(f, force=True).outcome == "busy"
    assert feed_server.hits("/f.xml") == []
    Schedule(redis, Keys()).release(url, token)
    assert make_poller(f).poll(f, force=True).outcome == "ok"


def test_a_poll_that_never_succeeded_sends_no_validators(
    feed_server: FeedServer, redis: Redis, make_poller: Callable[..., Poller]
) -> None:
    # Validators left behind without a completed poll must not turn the baseline into a 304.
    url = feed_server.route("/f.xml", Route(recorded("rss2_en.xml"), etag='"a"'))
    redis.hset(Keys().feed_validators(url), mapping={"etag": '"a"'})
    f = feed(url)
    assert make_poller(f).poll(f, force=True).events == 2
    assert "if-none-match" not in feed_server.hits("/f.xml")[0].headers

"""The three dedupe levels, on a real Redis story index."""

from __future__ import annotations

from redis import Redis

from sorawatch.events import EventLog
from sorawatch.projections import apply
from sorawatch.projections._common import epoch
from sorawatch.projections.similarity import jaccard, tokens
from sorawatch.settings import WorkerSettings
from sorawatch.workers import changes, dedupe
from tests.workers.items import RELEASED, item

SETTINGS = WorkerSettings()


def _file(redis: Redis, log: EventLog, *events) -> None:  # type: ignore[no-untyped-def]
    for event in events:
        log.append(event)
        batch = changes.decide(redis, log.keys, event, SETTINGS, "2025-01-01T00:00:00Z")
        log.append_many(batch)
        for e, _ in batch:
            apply(redis, log.keys, e)


def test_arabic_spelling_variants_give_the_same_tokens() -> None:
    a = tokens("أوبن إيه آي تُطلق سورا ٢ للمستخدمين")
    b = tokens("اوبن ايه اي تطلق سورا 2 للمستخدمين")
    assert a == b
    assert jaccard(a, b) == 1.0


def test_levels(redis: Redis) -> None:
    log = EventLog(redis)
    first = item(1, "OpenAI releases Sora 2 video app for iPhone users in America",
                 summary="The app opens by invitation.", facts=RELEASED)  # fmt: skip
    _file(redis, log, first)
    seen = epoch(first.at)

    def find(event):  # type: ignore[no-untyped-def]
        return dedupe.find(redis, log.keys, event.data, seen, SETTINGS.window_days)

    story = log.get(changes.event_id("story.started", first.id)).data["story"]  # type: ignore[union-attr]
    same_url = item(2, "Different", url=first.data["url"], feed="http://127.0.0.1/b.xml")
    assert find(same_url) == dedupe.Match("item", story)
    copy = item(3, "OpenAI releases Sora 2 video app for iPhone users in America.",
                summary="The app opens by invitation only.")  # fmt: skip
    assert find(copy) == dedupe.Match("story", story)
    arabic_copy = item(4, first.data["title"], lang="ar", summary=first.data["summary"])
    assert find(arabic_copy) is None  # story level is one language only
    other_words = item(5, "Sora 2 lands on the App Store", lang="en", facts=RELEASED)
    assert find(other_words) == dedupe.Match("event", story)
    arabic = item(6, "سورا 2 على متجر التطبيقات", lang="ar", facts=RELEASED)
    assert find(arabic) == dedupe.Match("event", story)
    other_fact = item(7, "Sora 2 lands on the App Store", facts={"status": "paused"})
    assert find(other_fact) is None
    unrelated = item(8, "Kingdom Hearts Sora figure sold out", summary="Toys.")
    assert find(unrelated) is None


def test_window_limits_story_and_event_matches(redis: Redis) -> None:
    log = EventLog(redis)
    first = item(1, "OpenAI releases Sora 2 video app for iPhone users", facts=RELEASED)
    _file(redis, log, first)
    later = epoch(first.at) + (SETTINGS.window_days + 1) * 86400
    copy = item(2, "OpenAI releases Sora 2 video app for iPhone users", facts=RELEASED)
    assert dedupe.same_story(redis, log.keys, copy.data, later, SETTINGS.window_days) is None
    assert (
        dedupe.same_event(redis, log.keys, copy.data["facts"], later, SETTINGS.window_days) is None
    )

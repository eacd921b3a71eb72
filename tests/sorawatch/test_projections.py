"""Projection read and write API: subscribers, webhooks, alerts, apply."""

from __future__ import annotations

import pytest
from redis import Redis

from sorawatch.commands import endpoints, subscriptions
from sorawatch.errors import EventError, ValidationError
from sorawatch.events import REGISTRY, Event, EventLog, EventType
from sorawatch.projections import alerts, apply, subscribers, webhooks


def test_matching_pages_many_subscribers_once_each(redis: Redis) -> None:
    log = EventLog(redis)
    for n in range(1203):
        topics = "status,pricing" if n % 2 else "pricing"
        subscriptions.request(log, f"user{n:05d}@example.com", "en", topics, confirmed=True)
    subscriptions.request(log, "pending@example.com", "en", "status")
    pages = list(subscribers.matching(redis, log.keys, "status", "news", page=500))
    assert [len(p) for p in pages] == [500, 101]
    flat = [e for p in pages for e in p]
    assert len(set(flat)) == len(flat) == 601
    assert "pending@example.com" not in flat
    # An unconfirmed request is kept aside (not in the log, not counted) until confirmed.
    assert subscribers.count(redis, log.keys) == 1203
    assert subscribers.get(redis, log.keys, "pending@example.com").status == "pending"  # type: ignore[union-attr]
    assert len(subscribers.list_all(redis, log.keys, "confirmed", offset=1200, limit=10)) == 3


def test_resubscribe_after_unsubscribe_is_a_new_event(redis: Redis) -> None:
    log = EventLog(redis)
    subscriptions.request(log, "a@example.com", "ar", "status", confirmed=True)
    assert subscriptions.unsubscribe(log, "A@example.com")
    again = subscriptions.request(log, "a@example.com", "ar", "status")
    assert again.status == "pending"
    assert subscriptions.confirm(log, "a@example.com").status == "confirmed"  # type: ignore[union-attr]
    types = [e.type for _, e in log.read()]
    assert types.count("subscriber.requested") == 2
    assert types.count("subscriber.confirmed") == 1


def test_a_confirmed_subscriber_is_not_downgraded_by_a_new_request(redis: Redis) -> None:
    log = EventLog(redis)
    subscriptions.request(log, "a@example.com", "ar", "status", confirmed=True)
    same = subscriptions.request(log, "a@example.com", "en", "pricing")
    assert same.status == "confirmed"
    assert same.lang == "ar"
    updated = subscriptions.update(log, "a@example.com", topics=["pricing"], kinds="news")
    assert updated is not None
    assert updated.topics == ("pricing",)
    assert list(subscribers.matching(redis, log.keys, "status", "news")) == []
    assert list(subscribers.matching(redis, log.keys, "pricing", "news")) == [["a@example.com"]]
    with pytest.raises(ValidationError):
        subscriptions.update(log, "a@example.com", lang="xx")


def test_webhook_disable_enable_and_matching(redis: Redis) -> None:
    log = EventLog(redis)
    hook, secret = endpoints.register(log, "https://127.0.0.1/h", topics=["status"],
                                     allow_private=True)  # fmt: skip
    assert secret.startswith("whsec_")
    assert hook.id.startswith("wh_")
    endpoints.disable(log, hook.id, "endpoint kept failing", failing_since="2025-01-01T00:00:00Z")
    got = webhooks.get(redis, log.keys, hook.id)
    assert got is not None
    assert not got.active
    assert got.failing_since == "2025-01-01T00:00:00Z"
    assert webhooks.matching(redis, log.keys, "status", "change") == []
    endpoints.enable(log, hook.id)
    assert webhooks.matching(redis, log.keys, "status", "change") == [hook.id]
    given = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    _, kept = endpoints.register(log, "https://127.0.0.1/g", secret=given, allow_private=True)
    assert kept == given


def test_alerts_recent_newest_first_and_by_topic(redis: Redis) -> None:
    log = EventLog(redis)
    for n, topic in enumerate(["status", "pricing", "status"]):
        data = {"alert_id": f"al_{n}", "topic": topic, "kind": "news", "before": None,
                "after": None, "facts": {}, "title": f"t{n}", "title_lang": "en",
                "summary": "", "sources": [], "story": f"st_{n}",
                "raised_at": f"2025-01-0{n + 1}T00:00:00Z", "baseline": False}  # fmt: skip
        apply(redis, log.keys, Event.new("alert.raised", data, n))
    assert [a["alert_id"] for a in alerts.recent(redis, log.keys)] == ["al_2", "al_1", "al_0"]
    assert [a["alert_id"] for a in alerts.recent(redis, log.keys, topic="status")] == [
        "al_2", "al_0"]  # fmt: skip
    assert alerts.count(redis, log.keys) == 3
    assert alerts.get(redis, log.keys, "al_1")["topic"] == "pricing"  # type: ignore[index]
    assert alerts.get(redis, log.keys, "nope") is None


def test_apply_refuses_an_event_no_projection_handles(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Registered for this test only: the registry is the product's list of types.
    monkeypatch.setitem(REGISTRY, "test.unhandled", EventType("test.unhandled", 1, ()))
    with pytest.raises(EventError, match="no projection handles"):
        apply(redis, EventLog(redis).keys, Event.new("test.unhandled", {}, 1))

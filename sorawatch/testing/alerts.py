"""An ``alert.raised`` as the judgement records it, for the delivery tests and benches."""

from __future__ import annotations

from typing import Any

from sorawatch.events import Event, EventLog
from sorawatch.projections import apply


def alert_record(alert_id: str = "al_test1", **changes: Any) -> dict[str, Any]:
    """The data of an ``alert.raised``: ChatGPT Plus users get Sora at $20 a month, one
    English source; ``changes`` replace its fields."""
    record: dict[str, Any] = {
        "alert_id": alert_id,
        "topic": "pricing",
        "kind": "change",
        "before": None,
        "after": {"plan": "ChatGPT Plus", "amount": 20, "currency": "USD", "period": "month"},
        "facts": {
            "pricing": [
                {"plan": "ChatGPT Plus", "amount": 20, "currency": "USD", "period": "month"}
            ]
        },
        "title": "Sora is now available to ChatGPT Plus users at $20 a month",
        "title_lang": "en",
        "summary": "OpenAI opened Sora to Plus subscribers.",
        "sources": [
            {
                "url": "https://news.example.test/sora-plus",
                "title": "Sora is now available to ChatGPT Plus users at $20 a month",
                "publisher": "Example News",
                "lang": "en",
                "published": "2025-02-03T10:00:00Z",
            }
        ],
        "story": "st_1",
        "raised_at": "2025-02-03T10:05:00Z",
        "baseline": False,
    }
    record.update(changes)
    return record


def raise_alert(log: EventLog, **changes: Any) -> tuple[dict[str, Any], Event]:
    """Append an ``alert.raised`` (without its fan-out job) and apply it."""
    record = alert_record(**changes)
    event = Event.new("alert.raised", record, "test", record["alert_id"])
    log.append(event)
    apply(log.redis, log.keys, event)
    return record, event

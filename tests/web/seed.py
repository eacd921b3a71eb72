"""Events that give the status page and the Atom feed something to show, written
through the log and applied as the workers would (nothing is written around them)."""

from __future__ import annotations

from typing import Any

from sorawatch.events import Event, EventLog
from sorawatch.projections import apply

HOSTILE = 'Sora <script>alert("x")</script> & "friends" \x01 is out'
EVIL_URL = "javascript:alert(1)"


def source(url: str, title: str, publisher: str, lang: str = "en") -> dict[str, Any]:
    return {"url": url, "title": title, "publisher": publisher, "lang": lang,
            "published": "2025-09-30T17:00:00Z"}  # fmt: skip


def _write(log: EventLog, event: Event) -> None:
    log.append(event)
    apply(log.redis, log.keys, event)


def seed(log: EventLog) -> dict[str, str]:
    """A released status (Sora 2), a Pro plan at $200/month, Disney as partner, and
    three alerts (one with a hostile headline and a javascript: source)."""
    verge = source(
        "https://www.theverge.com/sora-2?utm=1&x=2", "OpenAI releases Sora 2", "The Verge"
    )
    arabic = source(
        "https://aitnews.com/sora-2/",
        "أوبن إيه آي تطلق سورا 2 للجميع",
        "البوابة العربية للأخبار التقنية",
        "ar",
    )
    deadline = source(
        "https://deadline.com/disney-openai-sora/",
        "Disney invests in OpenAI, licenses characters for Sora",
        "Deadline",
    )
    changes = [
        ("status", {"value": "research_preview", "version": None}, {"value": "released", "version": "Sora 2"}, verge),
        ("pricing", None, {"plan": "Pro", "amount": 200, "currency": "USD", "period": "month"}, verge),
        ("partnership", None, {"partner": "Disney"}, deadline),
    ]  # fmt: skip
    for n, (topic, before, after, evidence) in enumerate(changes):
        data = {"topic": topic, "before": before, "after": after,
                "since": f"2025-09-30T1{n}:00:00Z", "evidence": evidence}  # fmt: skip
        _write(log, Event.new("state.changed", data, topic, n))
    alerts = {
        "status": {
            "alert_id": "al_status_1", "topic": "status", "kind": "change",
            "before": {"value": "research_preview", "version": None},
            "after": {"value": "released", "version": "Sora 2"},
            "facts": {"status": "released", "version": "Sora 2"},
            "title": "OpenAI releases Sora 2", "title_lang": "en",
            "summary": "OpenAI opened Sora 2 to everyone.",
            "sources": [verge, arabic], "story": "st_1",
            "raised_at": "2025-09-30T18:00:00.000000Z", "baseline": False,
        },
        "partner": {
            "alert_id": "al_partner_1", "topic": "partnership", "kind": "change",
            "before": None, "after": {"partner": "Disney"}, "facts": {"partners": ["Disney"]},
            "title": "Disney invests in OpenAI", "title_lang": "en",
            "summary": "Disney licenses its characters for Sora.",
            "sources": [deadline], "story": "st_2",
            "raised_at": "2025-12-11T09:30:00.000000Z", "baseline": False,
        },
        "hostile": {
            "alert_id": "al_news_1", "topic": "status", "kind": "news",
            "before": None, "after": None, "facts": {},
            "title": HOSTILE, "title_lang": "en", "summary": f"{HOSTILE} — details",
            "sources": [source(EVIL_URL, HOSTILE, "Evil <b>Press</b>"),
                        source("https://example.com/a?b=1&c=<2>", HOSTILE, "Example")],
            "story": "st_3", "raised_at": "2025-10-01T08:00:00.000000Z", "baseline": False,
        },
    }  # fmt: skip
    for record in alerts.values():
        _write(log, Event.new("alert.raised", record, record["alert_id"]))
    return {k: v["alert_id"] for k, v in alerts.items()}

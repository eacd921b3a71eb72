"""Item events as the watcher appends them, for the workers' tests."""

from __future__ import annotations

from typing import Any

from sorawatch.events import Event, EventLog, Job


def item(
    n: int | str,
    title: str,
    *,
    summary: str = "",
    lang: str = "en",
    feed: str = "http://127.0.0.1/a.xml",
    source: str = "Outlet",
    url: str | None = None,
    facts: dict[str, Any] | None = None,
    topics: list[str] | None = None,
    baseline: bool = False,
    published: str | None = None,
    key: str | None = None,
    at: str | None = None,
    revised_from: str | None = None,
    official: bool = False,
) -> Event:
    facts = facts or {}
    data = {
        "feed": feed, "source": source, "item_key": key or f"{feed}#{n}",
        "url": url or f"https://news.example/{n}", "title": title, "summary": summary,
        "lang": lang, "published": published, "content_hash": f"h{n}{title}",
        "baseline": baseline, "topics": topics or sorted(
            {"status" if "status" in facts else "", "pricing" if "pricing" in facts else "",
             "partnership" if "partners" in facts else ""} - {""}),
        "facts": facts,
    }  # fmt: skip
    if official:
        data["official"] = True
    kind = "item.seen"
    if revised_from is not None:
        kind = "item.revised"
        data["previous_hash"] = revised_from
    return Event.new(kind, data, feed, data["item_key"], data["content_hash"], at=at)


def post(log: EventLog, *events: Event) -> None:
    """Append items each with its process_change job, as the watcher does."""
    for event in events:
        log.append(
            event, [Job.for_event("changes", "sorawatch.workers.jobs.process_change", event)]
        )


RELEASED = {"status": "released", "version": "Sora 2"}

"""An Atom feed (RFC 4287) of the alerts, one per language, optionally of one topic.

Entry ids are ``urn:uuid:`` UUIDs derived from the alert id and the feed's
language: stable for an alert in one language, and distinct between the Arabic and
the English feed, so a reader subscribed to both keeps both entries. Every entry
says its language (``xml:lang``) and its HTML content its direction (a wrapping
``div dir``). Text from feeds is escaped by the template and stripped of
characters XML 1.0 forbids.
"""

from __future__ import annotations

import uuid
from datetime import UTC
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from sorawatch import clock, render
from sorawatch.projections import alerts
from sorawatch.vocabulary import Topic
from sorawatch.web.pages import clean_alert, clean_text
from sorawatch.web.view import negotiate, words

router = APIRouter(tags=["feeds"])

ENTRIES = 50
ATOM_TYPE = "application/atom+xml; charset=utf-8"
# A fixed namespace: the same alert id always gives the same entry id.
NAMESPACE = uuid.UUID("6b1f3c1e-2f0a-5d3e-9a57-0d9e4c2f7a10")


@router.get(
    "/alerts.atom",
    response_class=Response,
    responses={200: {"content": {"application/atom+xml": {}}, "description": "Atom 1.0 feed"}},
)
def alerts_feed(
    request: Request,
    lang: Literal["ar", "en"] | None = Query(default=None, description="Feed language."),
    topic: Annotated[Topic | None, Query(description="Only the alerts of this topic.")] = None,
) -> Response:
    """The newest alerts as an Atom feed in ``lang`` (else by ``Accept-Language``),
    of one ``topic`` when given (an unknown topic is a 422 naming ``topic``)."""
    chosen = negotiate(lang, request.headers.get("accept-language"))
    redis, keys = request.app.state.redis, request.app.state.keys
    base = request.app.state.settings.web.public_url
    records = [
        clean_alert(a)
        for a in alerts.recent(redis, keys, limit=ENTRIES, topic=topic)
        if not a.get("baseline")
    ]
    entries = [_entry(a, chosen, base) for a in records]
    updated = max((e["updated"] for e in entries), default=_rfc3339(None))
    query = f"lang={chosen}" + (f"&topic={topic}" if topic else "")
    title = words("atom.title", chosen)
    if topic:
        title = f"{title}: {render.topic_label(topic, chosen)}"
    xml = render.render(
        "web/alerts.atom.xml",
        lang=chosen,
        dir=render.direction(chosen),
        feed_id=f"urn:uuid:{uuid.uuid5(NAMESPACE, f'{base}/alerts.atom?{query}')}",
        title=title,
        subtitle=words("atom.subtitle", chosen),
        author=words("site.name", chosen),
        self_url=f"{base}/alerts.atom?{query}",
        home_url=f"{base}/?lang={chosen}",
        updated=updated,
        entries=entries,
    )
    return Response(xml, media_type=ATOM_TYPE, headers={"Vary": "Accept-Language"})


def entry_id(alert_id: str, lang: str) -> str:
    """The Atom id of an alert in the ``lang`` feed: ``urn:uuid:`` + UUIDv5 of the
    alert id and the language (the same every time; another in the other language)."""
    return f"urn:uuid:{uuid.uuid5(NAMESPACE, f'{alert_id}/{lang}')}"


def _entry(alert: dict[str, Any], lang: str, base: str) -> dict[str, Any]:
    sources = alert["sources"]
    return {
        "id": entry_id(alert["alert_id"], lang),
        "title": xml_text(render.headline(alert, lang)) or words("atom.title", lang),
        "updated": _rfc3339(alert["raised_at"]),
        "link": sources[0]["url"] if sources else f"{base}/?lang={lang}",
        "related": [s["url"] for s in sources[1:]],
        "summary": xml_text(render.summary(alert, lang)),
        "sources": [
            {
                "url": s["url"],
                "title": xml_text(s["title"]),
                "publisher": xml_text(s["publisher"]),
                "lang": s["lang"],
                "dir": render.direction(s["lang"]) if s["lang"] else "auto",
            }
            for s in sources
        ],
        "topic": alert["topic"],
        "topic_label": render.topic_label(alert["topic"], lang),
        "kind": alert["kind"],
        "kind_label": render.kind_label(alert["kind"], lang),
        "sources_label": words("atom.sources", lang),
    }


def xml_text(value: Any) -> str:
    """Text safe to put in XML 1.0 (escaping is the template's job)."""
    return clean_text(value)


def _rfc3339(value: Any) -> str:
    """An RFC 3339 UTC time; unreadable or missing times become now."""
    when = render._as_datetime(value) if value else None
    when = (when or clock.now()).astimezone(UTC)
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")

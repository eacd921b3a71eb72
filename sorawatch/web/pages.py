"""The status page: Sora's current status, plans and prices, partners, the timeline
of confirmed changes (newest first, each fact with since and until) and the latest
alerts, each with links to its sources, in Arabic or English."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from sorawatch import schedule
from sorawatch.projections import alerts, state
from sorawatch.vocabulary import DEFAULT_KINDS, TOPICS
from sorawatch.web.view import page, page_lang

router = APIRouter(include_in_schema=False)

TIMELINE = 30


@router.get("/", response_class=HTMLResponse)
def status_page(request: Request) -> HTMLResponse:
    """The status page in the language the reader asked for."""
    lang = page_lang(request)
    redis, keys = request.app.state.redis, request.app.state.keys
    return page(
        request,
        "status.html",
        lang,
        state=clean_state(state.current(redis, keys)),
        alerts=[clean_alert(a) for a in alerts.recent(redis, keys, limit=TIMELINE)],
        form=blank_form(lang),
        form_error=None,
    )


def blank_form(lang: str) -> dict[str, Any]:
    """The subscribe form's defaults: the page's language, every topic and kind, each
    alert as it comes (at most the default number a day)."""
    timing = asdict(schedule.Schedule())
    return {"email": "", "lang": lang, "topics": TOPICS, "kinds": DEFAULT_KINDS, **timing}


# C0 controls (but tab and newlines), DEL, lone surrogates and non-characters: feed
# text carrying them shows as boxes on a page and makes XML invalid.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")


def clean_text(value: Any) -> str:
    """Feed text as a plain string without control characters (escaping is the templates')."""
    return _CONTROL.sub("", str(value or ""))


def safe_url(url: Any) -> str | None:
    """The URL when it is http(s), else None: a feed's ``javascript:`` never becomes a link."""
    if not isinstance(url, str):
        return None
    try:
        scheme = urlsplit(url.strip()).scheme.lower()
    except ValueError:
        return None
    return url.strip() if scheme in ("http", "https") else None


def clean_sources(sources: Iterable[Any] | None) -> list[dict[str, Any]]:
    """Sources with every key the templates read, and only http(s) links."""
    out = []
    for raw in sources or ():
        if not isinstance(raw, dict):
            continue
        url = safe_url(raw.get("url"))
        if url is None:
            continue
        lang = raw.get("lang") if raw.get("lang") in ("ar", "en") else None
        out.append(
            {
                "url": url,
                "title": clean_text(raw.get("title")),
                "publisher": clean_text(raw.get("publisher")),
                "lang": lang,
                "published": raw.get("published"),
            }
        )
    return out


def clean_state(current: dict[str, Any]) -> dict[str, Any]:
    """The state with evidence lists cleaned and every key present."""
    status = current.get("status")
    if status:
        status = {
            "value": status.get("value"),
            "version": status.get("version"),
            "since": status.get("since"),
            "evidence": clean_sources(status.get("evidence")),
        }
    pricing = [
        {
            "plan": clean_text(p.get("plan")),
            "amount": p.get("amount"),
            "currency": p.get("currency"),
            "period": p.get("period"),
            "since": p.get("since"),
            "evidence": clean_sources(p.get("evidence")),
        }
        for p in current.get("pricing") or ()
    ]
    partners = [
        {
            "name": clean_text(p.get("name")),
            "since": p.get("since"),
            "evidence": clean_sources(p.get("evidence")),
        }
        for p in current.get("partners") or ()
    ]
    counts = current.get("counts") or {}
    ended = current.get("ended") or {}
    gone = [
        {"name": clean_text(e.get("plan") or e.get("name")), "since": e.get("since"),
         "until": e.get("until")}
        for e in [*(ended.get("pricing") or ()), *(ended.get("partners") or ())]
    ]  # fmt: skip
    timeline = [
        {"topic": e.get("topic") or "", "before": e.get("before"), "after": e.get("after") or {},
         "since": e.get("since"), "until": e.get("until"),
         "evidence": clean_sources(e.get("evidence"))}
        for e in (current.get("timeline") or ())[:TIMELINE]
    ]  # fmt: skip
    reported = [
        {"topic": r.get("topic"), "after": r.get("after") or {},
         "publishers": [clean_text(x.get("publisher")) for x in r.get("reports") or ()]}
        for r in current.get("reported") or ()
    ]  # fmt: skip
    return {
        "status": status,
        "pricing": pricing,
        "partners": partners,
        "ended": gone,
        "timeline": timeline,
        "reported": reported,
        "counts": {k: counts.get(k, 0) for k in ("items", "stories", "alerts")},
    }


def clean_alert(alert: dict[str, Any]) -> dict[str, Any]:
    """An alert record with the keys the templates and Atom read."""
    return {
        **alert,
        "alert_id": str(alert.get("alert_id") or ""),
        "topic": alert.get("topic") or "",
        "kind": alert.get("kind") or "news",
        "title": clean_text(alert.get("title")),
        "title_lang": alert.get("title_lang") if alert.get("title_lang") in ("ar", "en") else None,
        "summary": clean_text(alert.get("summary")),
        "raised_at": alert.get("raised_at") or "",
        "sources": clean_sources(alert.get("sources")),
    }

"""Pages for people: which language, and rendering a page template in it.

The language is ``?lang=`` when valid, else the best of ``Accept-Language``,
else English. Words live in ``templates/web/i18n.toml`` (page copy) and
``templates/i18n.toml`` (labels shared with the mail, via ``sorawatch.render``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

from babel.numbers import format_decimal
from fastapi import Request
from fastapi.responses import HTMLResponse

from sorawatch import render
from sorawatch.vocabulary import LANGS

DEFAULT_LANG = "en"


def negotiate(query_lang: str | None, accept_language: str | None) -> str:
    """``ar`` or ``en``: the query parameter wins, then the highest-weighted header entry."""
    if query_lang in LANGS:
        return query_lang
    best, best_q = DEFAULT_LANG, 0.0
    for position, part in enumerate((accept_language or "").split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().split("-")[0].lower()
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        # Earlier entries win ties, as the header's order is the client's preference.
        q -= position * 1e-6
        if primary in LANGS and q > best_q:
            best, best_q = primary, q
    return best


def page_lang(request: Request) -> str:
    return negotiate(request.query_params.get("lang"), request.headers.get("accept-language"))


@lru_cache(maxsize=1)
def _copy() -> dict[str, Any]:
    path = render.TEMPLATES_DIR / "web" / "i18n.toml"
    return tomllib.loads(path.read_text("utf-8"))


def words(key: str, lang: str, /, **values: Any) -> str:
    """Page copy for dotted ``key`` in ``lang``; KeyError for a missing key (a bug)."""
    node: Any = _copy()
    for part in key.split("."):
        node = node[part]
    text = str(node[lang if lang in LANGS else DEFAULT_LANG])
    if not values:
        return text
    # Isolate inserted values (an address, a date) so Latin text inside an Arabic
    # sentence does not reorder its neighbours (Unicode FSI ... PDI).
    return text.format(**{k: f"\u2068{v}\u2069" for k, v in values.items()})


def number(value: Any, lang: str) -> str:
    """A count with the locale's digits and grouping."""
    try:
        return str(format_decimal(value, locale=lang if lang in LANGS else DEFAULT_LANG))
    except (TypeError, ValueError, ArithmeticError):
        return str(value)


def page(
    request: Request,
    name: str,
    lang: str,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """Render ``templates/web/<name>`` in ``lang`` as an HTML response."""
    other = "ar" if lang == "en" else "en"
    html = render.render(
        f"web/{name}",
        lang=lang,
        dir=render.direction(lang),
        other_lang=other,
        w=words,
        number=number,
        # Only a query string: a link with a path could lead off the site (a 404 for
        # ``//evil.example/login`` would link to ``//evil.example/login?lang=ar``).
        switch_query=urlencode(
            [
                *((k, v) for k, v in request.query_params.multi_items() if k != "lang"),
                ("lang", other),
            ]
        ),
        **context,
    )
    response = HTMLResponse(html, status_code=status, headers=dict(headers or {}))
    # Content differs by Accept-Language when no ?lang= is given.
    response.headers["Vary"] = "Accept-Language"
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def error_page(
    request: Request, status: int, message: str, headers: Mapping[str, str] | None = None
) -> HTMLResponse:
    """An error page in the page's language; the English ``message`` is a detail."""
    lang = page_lang(request)
    key = f"error.{status}" if str(status) in _copy()["error"] else "error.other"
    return page(
        request,
        "error.html",
        lang,
        status=status,
        headers=headers,
        title=words(f"{key}.title", lang),
        text=words(f"{key}.text", lang),
        detail=message,
    )

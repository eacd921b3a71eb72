"""Everything a person reads is rendered here: Jinja2 templates and localized labels.

One Jinja2 environment over ``sorawatch.templates`` (autoescape on for HTML and
XML; plain-text mail is not HTML-escaped, it is text), Babel for dates and money
in ``ar`` and ``en``, and the labels and sentences of ``templates/i18n.toml``.
The web pages and the mail share it, so a status reads the same everywhere.
"""

from __future__ import annotations

import tomllib
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_datetime
from babel.numbers import format_currency, format_decimal
from jinja2 import Environment, FileSystemLoader, select_autoescape

from sorawatch import templates, vocabulary
from sorawatch.vocabulary import LANGS

# The folder templates/ in a checkout, sorawatch/templates/ in a wheel: wherever the package
# was imported from, so an editable install and an installed wheel read the same way.
TEMPLATES_DIR = Path(templates.__file__).resolve().parent

# Month names spelled out (Arabic month names for ``ar``), 24-hour UTC clock.
_DATE_FORMATS = {
    "en": {"medium": "d MMMM y, HH:mm 'UTC'", "date": "d MMMM y"},
    "ar": {"medium": "d MMMM y، HH:mm 'UTC'", "date": "d MMMM y"},
}


# Unicode isolates (UAX #9): FSI takes the direction of the text's first strong letter,
# PDI ends the isolate. An isolated run is laid out on its own and moves as one block,
# so "$20" stays "$20" inside Arabic and an English full stop stays with its sentence.
FSI = "\u2068"
PDI = "\u2069"
RLM = "\u200f"
_RTL = ("R", "AL")


def isolate(text: object) -> str:
    """``text`` between FSI and PDI (empty text stays empty)."""
    value = str(text or "")
    return f"{FSI}{value}{PDI}" if value else ""


def foreign(text: object, lang: str) -> bool:
    """Whether ``text`` would not lay out as a run of ``lang``'s own direction: Latin
    letters (or only numbers and signs, as in "$20") inside Arabic; Arabic inside
    English."""
    value = str(text or "")
    classes = {unicodedata.bidirectional(c) for c in value}
    if lang == "ar":
        return "L" in classes or not classes & {*_RTL}
    return bool(classes & {*_RTL})


def embed(text: object, lang: str) -> str:
    """``text`` for a sentence in ``lang``: isolated when its direction is not the
    sentence's (see ``foreign``), else as it is. The Jinja filter ``embed``."""
    value = str(text or "")
    if not value or (value.startswith(FSI) and value.endswith(PDI)):
        return value
    return isolate(value) if foreign(value, lang) else value


def line(text: object, lang: str) -> str:
    """A whole line of ``lang`` text for a place whose direction we do not set (a
    subject, a plain-text mail): Arabic becomes RLM + one isolated right-to-left block.
    A left-to-right client then keeps "(Sora 2)" at the Arabic's end, and a client that
    takes a line's direction from its first letter (isolates are skipped there) sees
    the RLM and lays the line out right to left. English is left as it is."""
    value = str(text or "")
    if not value or lang != "ar" or value.startswith(RLM + FSI):
        return value
    return RLM + isolate(value)


def languages(pref: str) -> tuple[str, ...]:
    """The languages a preference stands for: ``both`` → (ar, en); raises ValueError."""
    if pref == "both":
        return LANGS  # the order a `both` subscriber reads: Arabic first
    if pref in LANGS:
        return (pref,)
    raise ValueError(f"unknown language {pref!r} (expected ar, en or both)")


def direction(lang: str) -> str:
    """``rtl`` for Arabic, ``ltr`` otherwise (for the ``dir`` attribute)."""
    return "rtl" if lang == "ar" else "ltr"


@lru_cache(maxsize=1)
def _phrases() -> dict[str, Any]:
    return tomllib.loads((TEMPLATES_DIR / "i18n.toml").read_text("utf-8"))


def phrase(key: str, lang: str, /, **values: Any) -> str:
    """The ``lang`` text of a dotted ``key`` of i18n.toml, formatted with ``values``.

    An unknown key raises KeyError (a missing phrase is a bug, not a blank).
    """
    node: Any = _phrases()
    for part in key.split("."):
        node = node[part]
    text = node[lang if lang in LANGS else "en"]
    return str(text).format(**values) if values else str(text)


def _label(group: str, value: Any, lang: str) -> str:
    """A label from ``group``, or the value itself (humanised) when the data has none."""
    if value is None:
        return ""
    table = _phrases().get(group, {})
    entry = table.get(str(value))
    if entry is None:
        return str(value).replace("_", " ")
    return str(entry[lang if lang in LANGS else "en"])


def status_label(value: Any, lang: str) -> str:
    """``released`` → "Released" / "متاح للجميع" (all nine status values)."""
    return _label("status", value, lang)


def topic_label(value: Any, lang: str) -> str:
    return _label("topic", value, lang)


def kind_label(value: Any, lang: str) -> str:
    return _label("kind", value, lang)


def period_label(value: Any, lang: str) -> str:
    """The suffix of a price: ``month`` → "/month" / " شهريًا"; empty for no period."""
    if not value:
        return ""
    key = str(value).replace("-", "_").replace(" ", "_").lower()
    entry = _phrases().get("period", {}).get(key)
    if entry is None:
        return f" / {value}"
    return str(entry[lang if lang in LANGS else "en"])


def _as_datetime(value: datetime | str | None) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_date(value: datetime | str | None, lang: str, fmt: str = "medium") -> str:
    """A date-time (or ISO string) in UTC, per locale: Arabic month names for ``ar``.

    An unparseable string is returned as it is; None gives "".
    """
    dt = _as_datetime(value)
    if dt is None:
        return "" if value is None else str(value)
    locale = lang if lang in LANGS else "en"
    pattern = _DATE_FORMATS[locale].get(fmt, fmt)
    return str(format_datetime(dt, pattern, tzinfo=UTC, locale=locale))


def format_day(value: datetime, tz: str, lang: str) -> str:
    """The calendar day of ``value`` in time zone ``tz`` ("4 December 2026", "4 ديسمبر 2026")."""
    locale = lang if lang in LANGS else "en"
    return str(
        format_datetime(value, _DATE_FORMATS[locale]["date"], tzinfo=ZoneInfo(tz), locale=locale)
    )


def format_count(key: str, n: int, lang: str) -> str:
    """``n`` of something, in the plural form the language asks for: the ``key`` of
    i18n.toml holds one text per CLDR plural category (Arabic: zero, one, two, few,
    many, other), falling back to ``other``."""
    locale = lang if lang in LANGS else "en"
    forms = _phrases()
    for part in key.split("."):
        forms = forms[part]
    texts = forms[locale]
    category = Locale.parse(locale).plural_form(n)
    text = texts.get(category) or texts["other"]
    return str(text).format(n=format_decimal(n, locale=locale))


def format_money(amount: Any, currency: str | None, lang: str) -> str:
    """An amount with its currency per locale (``$20`` / ``‏20 US$``); whole amounts
    drop the ``.00``. A missing amount gives ""; a missing currency prints the number."""
    if amount is None or amount == "":
        return ""
    try:
        number = Decimal(str(amount))
    except InvalidOperation:
        return str(amount)
    locale = lang if lang in LANGS else "en"
    if not currency:
        return f"{number.normalize():f}"
    if number == number.to_integral_value():
        pattern = Locale.parse(locale).currency_formats["standard"].pattern
        whole = pattern.split(";")[0].replace(".00", "")
        return str(
            format_currency(number, currency.upper(), whole, locale=locale, currency_digits=False)
        )
    return str(format_currency(number, currency.upper(), locale=locale))


def price(plan: Mapping[str, Any] | None, lang: str) -> str:
    """``{"amount": 20, "currency": "USD", "period": "month"}`` → "$20/month"."""
    if not plan:
        return ""
    money = format_money(plan.get("amount"), plan.get("currency"), lang)
    return f"{money}{period_label(plan.get('period'), lang)}" if money else ""


def _status_text(value: Mapping[str, Any] | None, lang: str) -> str:
    if not value:
        return ""
    label = status_label(value.get("value"), lang)
    version = value.get("version")
    if not version or version == phrase("product", "en"):
        return label  # the first line is the product itself: "Sora status: Released"
    return phrase("version", lang, label=label, version=embed(version, lang))


def _fields(alert: Mapping[str, Any], lang: str) -> tuple[str, dict[str, str]]:
    """Which phrase (``status``/``status_change``/...) and its values, for a change."""
    topic = alert.get("topic")
    before = alert.get("before")
    after = alert.get("after") or {}
    if topic == "status":
        if before:
            values = {"before": _status_text(before, lang), "after": _status_text(after, lang)}
            return "status_change", values
        return "status", {"after": _status_text(after, lang)}
    if topic == "pricing":
        plan = embed(after.get("plan") or (before or {}).get("plan"), lang)
        if before and before.get("amount") != after.get("amount"):
            return "pricing_change", {
                "plan": plan,
                "before": embed(price(before, lang), lang),
                "after": embed(price(after, lang), lang),
            }
        return "pricing", {"plan": plan, "price": embed(price(after, lang), lang)}
    partner = embed(after.get("partner") or after.get("name"), lang)
    if after.get("active") is False:
        return "partnership_ended", {"partner": partner}
    return "partnership", {"partner": partner}


def _source_title(alert: Mapping[str, Any], lang: str) -> str:
    """The original headline, preferring a source written in ``lang``; a headline in
    the other language gets a short label in ``lang`` so the reader knows what it is."""
    for source in alert.get("sources") or ():
        if source.get("lang") == lang and source.get("title"):
            return str(source["title"])
    title = str(alert.get("title") or "")
    if title and alert.get("title_lang") not in (None, lang):
        return phrase("headline.news_other", lang, title=embed(title, lang))
    return title


# Alert kinds that tell changes (``news`` tells a source's headline).
CHANGE_KINDS = ("change", "story", "update", "early")


def headline(alert: Mapping[str, Any], lang: str) -> str:
    """One line for a subject or a title: "Sora status: Research preview → Released",
    naming a story's most important change (an update or an unconfirmed report says
    so first); a ``news`` alert (or one whose facts do not say enough) is its source's
    title."""
    if alert.get("kind") in CHANGE_KINDS and alert.get("after"):
        name, values = _fields(alert, lang)
        if all(values.values()):
            line = phrase(f"headline.{name}", lang, **values)
            if alert.get("kind") in ("update", "early"):
                line = phrase(f"headline.{alert['kind']}", lang, line=line)
            return line
    return _source_title(alert, lang)


def change_text(change: Mapping[str, Any], lang: str) -> str:
    """One change as a short line ("Sora status: Released"), for lists."""
    name, values = _fields(change, lang)
    return phrase(f"headline.{name}", lang, **values) if all(values.values()) else ""


def _change_sentence(change: Mapping[str, Any], lang: str) -> str:
    name, values = _fields(change, lang)
    if not all(values.values()):
        return ""
    sentence = phrase(f"summary.{name}", lang, **values)
    where = (change.get("after") or {}).get("where") if change.get("topic") == "status" else None
    if where:
        sentence += " " + phrase(
            "summary.where",
            lang,
            places=("، " if lang == "ar" else ", ").join(embed(w, lang) for w in where),
        )
    return sentence


def summary(alert: Mapping[str, Any], lang: str) -> str:
    """A sentence or two: what changed and who reported it (news: the source's summary)."""
    publishers = _publishers(alert.get("sources") or (), lang)
    reported = phrase("summary.reported_by", lang, sources=publishers) if publishers else ""
    if alert.get("kind") in CHANGE_KINDS and alert.get("after"):
        changes = alert.get("changes") or [alert]
        told = [s for s in (_change_sentence(c, lang) for c in changes) if s]
        if told:
            return " ".join([*told, reported] if reported else told)
    text = str(alert.get("summary") or "").strip()
    if alert.get("title_lang") not in (None, lang):
        # The feed's summary is in the other language: say who reported it instead.
        for source in alert.get("sources") or ():
            if source.get("lang") == lang and source.get("summary"):
                text = str(source["summary"]).strip()
                break
    return " ".join(p for p in (embed(text, lang), reported) if p)


def _publishers(sources: Iterable[Mapping[str, Any]], lang: str) -> str:
    names: list[str] = []
    for source in sources:
        name = str(source.get("publisher") or "").strip()
        if name and name not in names:
            names.append(name)
    return ("، " if lang == "ar" else ", ").join(embed(n, lang) for n in names[:3])


def safe_url(value: Any) -> str:
    """``value`` if it is an http(s) URL, else "#": a feed cannot put a
    ``javascript:`` link into a page or a mail (autoescape does not stop that)."""
    text = str(value or "").strip()
    return text if urlsplit(text).scheme in ("http", "https") else "#"


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The shared Jinja2 environment (templates package, autoescape for HTML/XML)."""
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=select_autoescape(
            enabled_extensions=("html", "htm", "xml", "html.j2", "xml.j2", "atom.j2"),
            disabled_extensions=("txt", "txt.j2"),
            default_for_string=True,
            default=True,
        ),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        date=format_date,
        money=format_money,
        price=price,
        status_label=status_label,
        topic_label=topic_label,
        kind_label=kind_label,
        period_label=period_label,
        headline=headline,
        summary=summary,
        change_text=change_text,
        direction=direction,
        safe_url=safe_url,
        isolate=isolate,
        embed=embed,
        line=line,
    )
    env.globals.update(
        t=phrase,
        phrase=phrase,
        direction=direction,
        languages=languages,
        headline=headline,
        summary=summary,
        count_of=format_count,
        LANGS=LANGS,
        LANG_CHOICES=vocabulary.LANG_CHOICES,
        TOPICS=vocabulary.TOPICS,
    )
    return env


def render(name: str, /, **context: Any) -> str:
    """Render template ``name`` (a path inside ``templates/``) with ``context``.

    Raises jinja2's TemplateNotFound / UndefinedError for a bug in the call.
    """
    return environment().get_template(name).render(**context)

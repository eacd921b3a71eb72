"""Feed bytes to raw entries: RSS 0.9x/1.0/2.0, Atom and RDF via feedparser, JSON Feed 1.x here.

feedparser gets the bytes we fetched wrapped in a stream (a bare ``bytes`` value
that happens to look like a path would be opened as a file) plus the response
headers, so it never fetches anything itself. Its XML handling is left as it
is: it strips DOCTYPE entity declarations except plain-text ones and tells expat
not to load external entities, so billion-laughs and XXE feeds do not expand
(``tests/watcher/test_hostile.py`` checks this).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import feedparser
import feedparser.api
from feedparser import CharacterEncodingOverride

from sorawatch.errors import ParseError

JSON_FEED_VERSION = re.compile(r"^https?://jsonfeed\.org/version/1(\.\d+)?/?$")
_XML_STARTS = (b"<", b"\xff\xfe", b"\xfe\xff", b"<\x00", b"\x00<")  # UTF-8, UTF-16 with/without BOM
# What feedparser falls back to when the declared encoding fails, and how a re-read
# tells a better encoding: at least 4 in 5 characters fit, 10 Arabic ones at least.
_LATIN_FALLBACKS = ("windows-1252", "iso-8859-2")
_MOSTLY = 5
_MIN_ARABIC = 10
# feedparser asks xml.sax for libxml2's SAX driver first, on every parse: a failed import
# each time (a sys.path scan under the import lock, which the poll threads queue on: ~4%
# of a cold pass under py-spy). Expat alone, which is also the parser whose entity
# handling the module docstring describes, whatever happens to be installed.
feedparser.api.PREFERRED_XML_PARSERS[:] = []
_HTML_PAGE = re.compile(rb"<!doctype\s+html|<html[\s>]|<head[\s>]|<body[\s>]", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class RawEntry:
    """One entry as the feed states it, before normalising (HTML still in place)."""

    guid: str | None
    link: str | None
    title: str
    summary: str
    published: datetime | None
    lang: str | None = None
    publisher: str | None = None  # e.g. Google News' <source>


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """A feed's own metadata and its entries, in document order."""

    format: str
    title: str | None = None
    lang: str | None = None
    link: str | None = None
    entries: list[RawEntry] = field(default_factory=list)
    warning: str | None = None  # feedparser read it, but it was not well-formed


def parse(url: str, body: bytes, headers: Mapping[str, str] | None = None) -> ParsedFeed:
    """Parse ``body`` fetched from ``url``.

    Raises ParseError when the body is empty, an HTML page ("not a feed"),
    malformed with no entries, or a JSON document that is not a JSON Feed.
    """
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    if not body.strip():
        raise ParseError(url, "empty body")
    if _looks_like_json(body, headers.get("content-type", "")):
        return parse_json_feed(url, body)
    if not body.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(_XML_STARTS):
        raise ParseError(url, "not a feed (neither XML nor JSON)")
    return _parse_xml(url, body, headers)


def _looks_like_json(body: bytes, content_type: str) -> bool:
    head = body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if head in (b"{", b"<"):
        return head == b"{"  # the body knows better than a mislabelled Content-Type
    return "json" in content_type.lower()


def _parse_xml(url: str, body: bytes, headers: dict[str, str]) -> ParsedFeed:
    result = _feedparser(body, headers)
    if isinstance(result.get("bozo_exception"), CharacterEncodingOverride):
        result = _reread(body, headers, result)
    version = result.get("version") or ""
    entries = result.get("entries") or []
    bozo = result.get("bozo_exception") if result.get("bozo") else None
    if not version and not entries:
        if _HTML_PAGE.search(body[:4096]) or "html" in headers.get("content-type", "").lower():
            raise ParseError(url, "not a feed (the server sent an HTML page)")
        if bozo is not None:
            raise ParseError(url, f"malformed feed: {_describe(bozo)}")
        raise ParseError(url, "not a feed (no RSS, Atom or RDF root element)")
    if bozo is not None and not entries:
        raise ParseError(url, f"malformed feed with no entries: {_describe(bozo)}")
    meta = result.get("feed") or {}
    return ParsedFeed(
        format=version or "unknown",
        title=_str(meta.get("title")),
        lang=_str(meta.get("language")) or _str((meta.get("title_detail") or {}).get("language")),
        link=_str(meta.get("link")),
        entries=[_xml_entry(e) for e in entries],
        warning=_describe(bozo) if bozo is not None else None,
    )


def _feedparser(body: bytes, headers: dict[str, str]) -> Any:
    # Links and permalink guids are still resolved against Content-Location (feedparser
    # does that whatever the flag); the flag only rewrites href/src inside HTML titles
    # and summaries, markup that normalise strips to plain text: a second HTML parse of
    # every summary for nothing.
    return feedparser.parse(
        io.BytesIO(body), response_headers=headers, sanitize_html=True, resolve_relative_uris=False
    )


def _reread(body: bytes, headers: dict[str, str], result: Any) -> Any:
    """``body`` read again when its declared encoding failed and feedparser fell back to
    windows-1252: that turns an Arabic feed into Latin mojibake, hiding its names and
    prices from the classifier. UTF-8 with a few bad bytes is read as UTF-8 (the bad
    bytes replaced); windows-1256 Arabic (the usual legacy label) as windows-1256.
    Anything else keeps feedparser's reading. The override stays as the warning."""
    if result.get("encoding") not in _LATIN_FALLBACKS:
        return result
    utf8 = body.decode("utf-8", errors="replace")
    bad = utf8.count("\ufffd")
    if sum(1 for c in utf8 if not c.isascii()) - bad >= _MOSTLY * bad:
        body, encoding = utf8.encode(), "utf-8"
    elif _arabic_share(body.decode("cp1256", errors="replace")):
        encoding = "windows-1256"
    else:
        return result
    media = headers.get("content-type", "").split(";", 1)[0].strip() or "application/xml"
    again = _feedparser(body, {**headers, "content-type": f"{media}; charset={encoding}"})
    if not again.get("bozo"):
        again["bozo"] = 1
        again["bozo_exception"] = CharacterEncodingOverride(
            f"{result['bozo_exception']}; read as {encoding} instead"
        )
    return again


def _arabic_share(text: str) -> bool:
    """Most non-ASCII characters of ``text`` are Arabic, and there are a few words of them."""
    wide = [c for c in text if not c.isascii()]
    arabic = sum(1 for c in wide if "\u0600" <= c <= "\u06ff")
    return arabic >= _MIN_ARABIC and arabic * _MOSTLY >= len(wide) * (_MOSTLY - 1)


def _xml_entry(entry: dict[str, Any]) -> RawEntry:
    # dict.get, not FeedParserDict.get: none of these keys is one of its aliases, and its
    # alias lookup per key was over half of this function's time under the profiler.
    get = dict.get
    summary = _str(get(entry, "summary")) or ""
    for content in get(entry, "content") or []:
        # Atom <content> / RSS content:encoded carry the full text; the summary is enough
        # to classify on unless it is missing.
        if not summary and content.get("value"):
            summary = str(content["value"])
    source = get(entry, "source") or {}
    detail = get(entry, "title_detail") or {}
    return RawEntry(
        guid=_str(get(entry, "id")),
        link=_str(get(entry, "link")),
        title=_str(get(entry, "title")) or "",
        summary=summary,
        published=_struct_time(get(entry, "published_parsed") or get(entry, "updated_parsed")),
        lang=_str(get(detail, "language")) or _str(get(entry, "language")),
        publisher=_str(get(source, "title")),
    )


def parse_json_feed(url: str, body: bytes) -> ParsedFeed:
    """Parse a JSON Feed 1.0 or 1.1 document. Raises ParseError if it is not one."""
    try:
        doc = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ParseError(url, f"malformed JSON: {exc}") from None
    if not isinstance(doc, dict) or not JSON_FEED_VERSION.match(str(doc.get("version", ""))):
        raise ParseError(url, "not a feed (JSON without a jsonfeed.org version)")
    items = doc.get("items")
    if not isinstance(items, list):
        raise ParseError(url, "malformed JSON Feed: items is not a list")
    feed_lang = _str(doc.get("language"))
    entries = []
    for item in items:
        if not isinstance(item, dict):
            continue
        summary = (
            _str(item.get("summary"))
            or _str(item.get("content_html"))
            or _str(item.get("content_text"))
            or ""
        )
        entries.append(
            RawEntry(
                guid=_str(item.get("id")),
                link=_str(item.get("url")) or _str(item.get("external_url")),
                title=_str(item.get("title")) or "",
                summary=summary,
                published=_iso(item.get("date_published") or item.get("date_modified")),
                lang=_str(item.get("language")),
                publisher=None,
            )
        )
    version = str(doc["version"]).rstrip("/").rsplit("/", 1)[-1]
    return ParsedFeed(
        format=f"json{version.replace('.', '')}",
        title=_str(doc.get("title")),
        lang=feed_lang,
        link=_str(doc.get("home_page_url")),
        entries=entries,
    )


def _struct_time(value: Any) -> datetime | None:
    """feedparser's UTC ``struct_time`` as a datetime; None for anything out of range."""
    if value is None:
        return None
    try:
        t = tuple(value)
        return datetime(t[0], t[1], t[2], t[3], t[4], t[5], tzinfo=UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def _iso(value: Any) -> datetime | None:
    """An RFC 3339 date from JSON Feed; None for garbage. Naive times are taken as UTC."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _str(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        return None
    text = str(value).strip()
    return text or None


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]

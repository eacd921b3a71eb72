"""Raw entries to comparable items: canonical URL, plain text, item key, content hash, language.

Everything here is a pure function, so the same entry always gives the same key
and hash, whichever process or day it is read on: that is what makes event ids
(feed + item key + content hash) stable.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from sorawatch.settings import FeedSettings
from sorawatch.vocabulary import LANGS
from sorawatch.watcher.parse import ParsedFeed, RawEntry

# Events carry enough text to classify and to show; a full article body in every
# event would swamp the log.
MAX_TITLE = 500
MAX_SUMMARY = 4000

TRACKING_PREFIXES = ("utm_", "mc_")
TRACKING_PARAMS = frozenset(
    {"fbclid", "gclid", "dclid", "msclkid", "yclid", "igshid", "ref", "ref_src", "_hsenc", "_hsmi"}
)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_DROP_CONTENT = frozenset({"script", "style", "noscript", "template", "head", "title"})
_BLOCK = frozenset(
    {"p", "br", "div", "li", "ul", "ol", "tr", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6",
     "blockquote", "pre", "section", "article", "header", "footer", "figure", "figcaption", "hr"}
)  # fmt: skip
_SPACE = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ARABIC = re.compile(r"[\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\ufb50-\ufdff\ufe70-\ufefc]")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")
# A URL canonical_url would return unchanged (lowercase http(s) host, no port, query,
# fragment, params, whitespace or odd characters): most feed links, so they skip the
# split, join and query parse. Anything else takes the general path.
_CANONICAL = re.compile(
    r"https?://[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?(/[A-Za-z0-9._~!$'()*+,=:@%/-]*)?"
)


@dataclass(frozen=True, slots=True)
class Item:
    """One normalised feed item: what detection compares and events carry."""

    key: str
    url: str | None
    title: str
    summary: str
    lang: str
    published: str | None
    source: str
    content_hash: str


def canonical_url(url: str | None, base: str | None = None) -> str | None:
    """``url`` without tracking parameters or fragment, with a lowercased scheme and
    host, no default port and a sorted query. None for anything but http(s)."""
    if not url:
        return None
    url = url.strip()
    plain = _CANONICAL.fullmatch(url)
    if plain is not None:  # absolute, so ``base`` would not change it either
        return url if plain.group(1) else url + "/"
    return _canonical_url(url, base)


def _canonical_url(url: str, base: str | None) -> str | None:
    """canonical_url's general path (``url`` already stripped)."""
    if base:
        url = urljoin(base, url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    query = sorted(
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _is_tracking(k)
    )
    return urlunsplit((scheme, netloc, parts.path or "/", urlencode(query), ""))


def _is_tracking(name: str) -> bool:
    low = name.lower()
    return low in TRACKING_PARAMS or low.startswith(TRACKING_PREFIXES)


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROP_CONTENT:
            self.skipping += 1
        elif tag in _BLOCK:
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _DROP_CONTENT:
            self.skipping = max(0, self.skipping - 1)
        elif tag in _BLOCK:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def plain_text(markup: str | None) -> str:
    """Text a person would read in ``markup``: tags stripped, entities unescaped,
    scripts and styles dropped, NFKC-normalised, whitespace collapsed."""
    if not markup:
        return ""
    if "<" in markup or "&" in markup:
        parser = _TextExtractor()
        parser.feed(markup)
        parser.close()
        markup = "".join(parser.parts)
    text = _CONTROL.sub("", markup)
    if not text.isascii():  # NFKC leaves ASCII as it is
        text = unicodedata.normalize("NFKC", text)
    return _SPACE.sub(" ", text).strip()


def content_hash(title: str, summary: str) -> str:
    """The hash that tells a revised item from an unchanged one."""
    raw = f"{title}\n{summary}".encode()
    return hashlib.sha256(raw).hexdigest()[:32]


def item_key(guid: str | None, url: str | None, title: str) -> str:
    """guid, else canonical link, else a hash of the title: stable across polls."""
    if guid and guid.strip():
        return unicodedata.normalize("NFKC", guid.strip())[:500]
    if url:
        return url[:1000]
    return "title:" + hashlib.sha256(title.encode()).hexdigest()[:32]


def script_lang(text: str) -> str:
    """``ar`` when Arabic letters make up a good share of ``text``, else ``en``."""
    if text.isascii():
        return "en"
    arabic = len(_ARABIC.findall(text))
    latin = len(_LATIN.findall(text))
    # Arabic news quotes Latin product names ("OpenAI Sora"); a third is plenty.
    return "ar" if arabic and arabic * 2 >= latin else "en"


def language(*declared: str | None, text: str = "") -> str:
    """The first declared language we serve (item, feed settings, feed), else the script's.

    Codes are reduced to their primary subtag (``ar-EG`` → ``ar``); a language we do
    not serve is skipped, since subscribers choose only among LANGS.
    """
    for value in declared:
        if value:
            primary = value.strip().replace("_", "-").split("-", 1)[0].lower()
            if primary in LANGS:
                return primary
    return script_lang(text)


def iso_date(value: datetime | None) -> str | None:
    """UTC ISO-8601, or None when the date cannot be represented (years 1 and 9999 can)."""
    if value is None:
        return None
    try:
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, ValueError):
        return None


def strip_publisher(
    title: str, publisher: str | None, separators: tuple[str, ...] = (" - ", " – ", " | ")
) -> str:
    """Google News appends " - Publisher" to titles (and the name to summaries);
    the publisher goes in ``source``."""
    if publisher:
        for sep in separators:
            suffix = f"{sep}{publisher}"
            if title.endswith(suffix) and len(title) > len(suffix):
                return title[: -len(suffix)].rstrip()
    return title


def normalise(entry: RawEntry, feed: FeedSettings, parsed: ParsedFeed, base: str) -> Item:
    """One raw entry of ``feed`` as an Item; ``base`` resolves relative links."""
    publisher = plain_text(entry.publisher)[:200] or None
    title = strip_publisher(plain_text(entry.title), publisher)[:MAX_TITLE]
    summary = strip_publisher(plain_text(entry.summary), publisher, (" ",))[:MAX_SUMMARY]
    url = canonical_url(entry.link, base)
    return Item(
        key=item_key(entry.guid, url, title),
        url=url,
        title=title,
        summary=summary,
        lang=language(entry.lang, feed.lang, parsed.lang, text=f"{title} {summary}"),
        published=iso_date(entry.published),
        source=publisher or feed.name,
        content_hash=content_hash(title, summary),
    )

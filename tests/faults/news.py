"""Feeds of real-looking Sora news for the ingest fault tests."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime
from xml.sax.saxutils import escape

NOW = format_datetime(datetime.now(UTC))
WEATHER = ("Weather: sunny week ahead", "https://outlet.example.test/weather", "Sun all week.")
# Each asserts a different fact, so each is its own event (and its own alert).
STORIES = [
    (
        "OpenAI partners with Lionsgate on Sora video model",
        "https://a.example.test/lionsgate",
        "The studio Lionsgate will use Sora.",
    ),
    (
        "OpenAI releases Sora to everyone",
        "https://a.example.test/released",
        "Sora is now generally available.",
    ),
    (
        "Sora Pro plan costs $200 a month",
        "https://b.example.test/pro",
        "OpenAI prices its Sora video model Pro plan at $200 per month.",
    ),
    (
        "OpenAI signs Sora deal with Pixar",
        "https://b.example.test/pixar",
        "Pixar studio will use the OpenAI Sora video model.",
    ),
    (
        "Sora is now available to ChatGPT Plus users at $20 a month",
        "https://c.example.test/plus",
        "OpenAI said its Sora video model is now included in ChatGPT Plus for $20 a month.",
    ),
]


def rss(items: list[tuple[str, str, str]], lang: str = "en") -> bytes:
    """An RSS 2.0 feed of (title, link, description) items, published now."""
    entries = "".join(
        f"<item><title>{escape(t)}</title><link>{escape(u)}</link><guid>{escape(u)}</guid>"
        f"<description>{escape(d)}</description><pubDate>{NOW}</pubDate></item>"
        for t, u, d in items
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Feed</title>'
        f"<link>https://outlet.example.test/</link><description>x</description>"
        f"<language>{lang}</language>{entries}</channel></rss>"
    ).encode()


def feeds_toml(urls: dict[str, str], interval: int = 10) -> str:
    """First-party feeds: what one says is confirmed alone (these tests are about delivery)."""
    return "".join(
        f'[[feeds]]\nurl = "{url}"\nname = "Outlet {name}"\nlang = "en"\ninterval = {interval}\n'
        'trust = "official"\n\n'
        for name, url in urls.items()
    )

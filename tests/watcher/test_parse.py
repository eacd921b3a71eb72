"""Parsing recorded feeds of every format, in English and Arabic, and refusing non-feeds."""

from __future__ import annotations

import pytest

from sorawatch.errors import ParseError
from sorawatch.watcher.normalise import Item, normalise
from sorawatch.watcher.parse import ParsedFeed, parse
from tests.watcher.conftest import feed
from tests.watcher.recorded import recorded

URL = "http://127.0.0.1:1/feed"
XML = {"content-type": "application/xml; charset=utf-8"}
JSON = {"content-type": "application/feed+json"}


def items(name: str, lang: str | None = None) -> tuple[ParsedFeed, list[Item]]:
    headers = JSON if name.endswith(".json") else XML
    parsed = parse(URL, recorded(name), headers)
    return parsed, [normalise(e, feed(URL, "Feed name", lang), parsed, URL) for e in parsed.entries]


@pytest.mark.parametrize(
    ("name", "fmt", "count"),
    [
        ("rss2_en.xml", "rss20", 3),
        ("rss2_ar.xml", "rss20", 2),
        ("gnews_en.xml", "rss20", 2),
        ("gnews_ar.xml", "rss20", 1),
        ("atom_en.xml", "atom10", 2),
        ("atom_ar.xml", "atom10", 1),
        ("rdf_en.xml", "rss10", 2),
        ("jsonfeed_en.json", "json11", 2),
        ("jsonfeed_ar.json", "json1", 1),
    ],
)
def test_every_format_parses(name: str, fmt: str, count: int) -> None:
    parsed, got = items(name)
    assert parsed.format == fmt
    assert len(got) == count
    assert all(i.title and i.key and i.content_hash for i in got)


def test_rss2_english_item_is_normalised() -> None:
    _parsed, got = items("rss2_en.xml")
    first = got[0]
    assert first.key == "openai-sora-is-here"
    assert first.url == "https://openai.com/index/sora-is-here/?a=1&b=2"
    assert first.lang == "en"  # from the feed's <language>en-us</language>
    assert first.published == "2024-12-09T18:00:00Z"
    assert first.source == "Feed name"
    assert "alert" not in first.summary
    assert "color" not in first.summary
    assert "$20 a month & include credits" in first.summary
    assert got[1].summary.startswith("Sora Turbo, the new version of OpenAI's")


def test_arabic_wordpress_feed() -> None:
    parsed, got = items("rss2_ar.xml")
    assert parsed.title == "البوابة العربية للأخبار التقنية"
    assert got[0].lang == "ar"
    assert got[0].title == "أوبن إيه آي تطلق نموذج سورا لتوليد الفيديو رسميًا"
    assert got[0].url == "https://aitnews.example/2024/12/10/openai-sora/"
    assert got[0].published == "2024-12-10T05:00:00Z"  # +0300 in the feed


def test_google_news_source_names_the_publisher() -> None:
    _, en = items("gnews_en.xml")
    assert en[0].source == "Variety"
    assert en[0].title == "OpenAI partners with Lionsgate to bring Sora to Hollywood studios"
    assert not en[0].summary.endswith("Variety")
    _, ar = items("gnews_ar.xml")
    assert ar[0].source == "سكاي نيوز عربية"
    assert ar[0].title == "OpenAI تتيح سورا في مصر والسعودية والإمارات"
    assert ar[0].lang == "ar"


def test_atom_relative_link_html_title_and_script_language() -> None:
    _, en = items("atom_en.xml")
    assert en[0].url == "http://127.0.0.1:1/2024/12/14/openai-sora-signups-paused"
    assert en[0].title == "OpenAI pauses Sora sign-ups after demand overwhelms servers"
    assert en[0].published == "2024-12-14T15:30:00Z"
    _, ar = items("atom_ar.xml")
    assert ar[0].lang == "ar"  # no language declared anywhere: Arabic script


def test_rdf_item_language_wins_over_the_feed() -> None:
    _, got = items("rdf_en.xml")
    assert got[0].url == "https://slashdot.example/story/sora-release"  # mc_*, ref dropped
    assert got[0].lang == "en"
    assert got[1].lang == "ar"  # xml:lang="ar" on the item


def test_feed_settings_language_beats_the_feed_own() -> None:
    _, got = items("rss2_en.xml", lang="ar")
    assert got[0].lang == "ar"


def test_json_feed_items_and_garbage_date() -> None:
    parsed, got = items("jsonfeed_en.json")
    assert parsed.lang == "en"
    assert got[0].url == "https://aivideo.example/sora-api-pricing"
    assert (
        got[0].summary
        == "OpenAI opened the Sora API to developers at $0.10 per second of generated video."
    )
    assert got[0].published == "2024-12-16T08:00:00Z"
    assert got[1].published is None
    _, ar = items("jsonfeed_ar.json")
    assert ar[0].lang == "ar"
    assert ar[0].published == "2024-12-17T07:00:00Z"


def test_dates_at_the_edges_and_items_without_guid_or_link() -> None:
    _, got = items("dates.xml")
    assert [i.published for i in got[:3]][2] is None
    assert got[0].published in ("0001-01-01T00:00:00Z", None)
    assert got[1].published in ("9999-12-31T23:59:59Z", None)
    assert got[3].key.startswith("title:")
    again = items("dates.xml")[1]
    assert [i.key for i in again] == [i.key for i in got]  # stable across polls


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("malformed.xml", "malformed feed"),
        ("not_a_feed.html", "not a feed"),
    ],
)
def test_broken_bodies_are_parse_errors(name: str, message: str) -> None:
    with pytest.raises(ParseError) as err:
        parse(URL, recorded(name), XML)
    assert message in str(err.value)
    assert err.value.kind == "parse"
    assert err.value.url == URL


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty body"),
        (b"   \n", "empty body"),
        (b'{"hello": "world"}', "not a feed"),
        (b"{not json", "malformed JSON"),
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": 3}', "items is not a list"),
        (b"just some text", "not a feed"),
        (b"/etc/passwd", "not a feed"),  # a bare path must never be opened as a file
    ],
)
def test_non_feeds_are_refused(body: bytes, message: str) -> None:
    with pytest.raises(ParseError) as err:
        parse(URL, body, {"content-type": "text/plain"})
    assert message in str(err.value)


def test_html_page_served_as_xml_is_still_not_a_feed() -> None:
    with pytest.raises(ParseError, match="not a feed"):
        parse(URL, recorded("not_a_feed.html"), {"content-type": "application/rss+xml"})

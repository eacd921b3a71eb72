"""The Atom feed of alerts: valid for feedparser (no bozo), stable ids, escaped text."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET

import feedparser
import pytest
from fastapi.testclient import TestClient

from sorawatch.events import EventLog
from sorawatch.web.atom import entry_id
from tests.web.seed import EVIL_URL, HOSTILE, seed

ATOM = "{http://www.w3.org/2005/Atom}"


def test_empty_feed_is_valid(client: TestClient) -> None:
    response = client.get("/alerts.atom?lang=en")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/atom+xml; charset=utf-8"
    parsed = feedparser.parse(response.content)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert parsed.feed.id.startswith("urn:uuid:")
    assert parsed.entries == []


@pytest.mark.parametrize("lang", ["en", "ar"])
def test_feed_of_alerts(client: TestClient, log: EventLog, lang: str) -> None:
    ids = seed(log)
    response = client.get(f"/alerts.atom?lang={lang}")
    parsed = feedparser.parse(response.content)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.feed.language == lang
    assert parsed.feed.updated == "2025-12-11T09:30:00Z"
    assert [e.id for e in parsed.entries] == [
        entry_id(ids["partner"], lang),
        entry_id(ids["hostile"], lang),
        entry_id(ids["status"], lang),
    ]
    for entry in parsed.entries:
        uuid.UUID(entry.id.removeprefix("urn:uuid:"))
        assert entry.updated
        assert entry.link.startswith("https://")
    partner, hostile, status = parsed.entries
    if lang == "en":
        assert partner.title == "Sora partnership: Disney"
        assert status.title == "Sora status: Research preview → Released (Sora 2)"
    else:
        assert partner.title == "شراكة سورا: \u2068Disney\u2069"  # isolated in Arabic
        assert "متاح للجميع" in status.title
    assert partner.link == "https://deadline.com/disney-openai-sora/"
    assert status.link == "https://www.theverge.com/sora-2?utm=1&x=2"
    # A feed's headline is text: the script is a title, never markup.
    assert HOSTILE.replace("\x01", "") in hostile.title  # as text, whatever label it wears
    assert hostile.title_detail.type == "text/plain"
    # javascript: sources are dropped; the next source is the link.
    assert hostile.link == "https://example.com/a?b=1&c=<2>"
    assert EVIL_URL not in response.text


def test_entry_content_is_escaped_html(client: TestClient, log: EventLog) -> None:
    seed(log)
    body = client.get("/alerts.atom?lang=en").content
    root = ET.fromstring(body)  # noqa: S314 (our own output)
    contents = [e.find(f"{ATOM}content") for e in root.findall(f"{ATOM}entry")]
    html = [c.text or "" for c in contents if c is not None]
    assert all(c.get("type") == "html" for c in contents if c is not None)
    hostile = next(h for h in html if "friends" in h)
    # Once unescaped from XML, the HTML still shows the script as text.
    assert "<script>" not in hostile
    assert "&lt;script&gt;" in hostile
    assert '<a href="https://example.com/a?b=1&amp;c=&lt;2&gt;" lang="en" dir="ltr">' in hostile


def test_entry_ids_are_stable_and_distinct_per_language(client: TestClient, log: EventLog) -> None:
    seed(log)
    first = feedparser.parse(client.get("/alerts.atom?lang=ar").content)
    second = feedparser.parse(client.get("/alerts.atom?lang=ar").content)
    assert [e.id for e in first.entries] == [e.id for e in second.entries]
    english = feedparser.parse(client.get("/alerts.atom?lang=en").content)
    # A reader subscribed to both feeds keeps both entries of one alert.
    assert len(english.entries) == len(first.entries) == 3
    assert not {e.id for e in english.entries} & {e.id for e in first.entries}


@pytest.mark.parametrize(("lang", "direction"), [("ar", "rtl"), ("en", "ltr")])
def test_every_entry_says_its_language_and_direction(
    client: TestClient, log: EventLog, lang: str, direction: str
) -> None:
    seed(log)
    body = client.get(f"/alerts.atom?lang={lang}").content
    parsed = feedparser.parse(body)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.entries
    for entry in parsed.entries:
        assert entry.content[0].language == lang  # xml:lang on the entry
        assert entry.title_detail.language == lang
        assert entry.content[0].type == "text/html"
    root = ET.fromstring(body)  # noqa: S314 (our own output)
    for element in root.findall(f"{ATOM}entry"):
        assert element.get("{http://www.w3.org/XML/1998/namespace}lang") == lang
        content = element.find(f"{ATOM}content")
        assert content is not None
        html = content.text or ""
        assert html.startswith(f'<div lang="{lang}" dir="{direction}">'), html[:60]
        assert html.endswith("</div>")
        if lang == "ar" and "متاح للجميع" in (element.findtext(f"{ATOM}title") or ""):
            # The English source keeps its own direction inside the right-to-left entry.
            assert 'lang="en" dir="ltr">OpenAI releases Sora 2</a>' in html


def test_feed_of_one_topic_in_one_language(client: TestClient, log: EventLog) -> None:
    ids = seed(log)
    parsed = feedparser.parse(client.get("/alerts.atom?topic=partnership&lang=ar").content)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.feed.language == "ar"
    assert [e.id for e in parsed.entries] == [entry_id(ids["partner"], "ar")]
    assert all(e.tags[0].term == "partnership" for e in parsed.entries)
    self_link = next(link.href for link in parsed.feed.links if link.rel == "self")
    assert self_link.endswith("/alerts.atom?lang=ar&topic=partnership")
    everything = feedparser.parse(client.get("/alerts.atom?lang=ar").content)
    assert parsed.feed.id != everything.feed.id
    status = feedparser.parse(client.get("/alerts.atom?topic=status&lang=en").content)
    assert {e.id for e in status.entries} == {
        entry_id(ids["status"], "en"),
        entry_id(ids["hostile"], "en"),
    }
    pricing = feedparser.parse(client.get("/alerts.atom?topic=pricing&lang=ar").content)
    assert not pricing.bozo
    assert pricing.entries == []


def test_unknown_topic_is_a_422_naming_the_parameter(client: TestClient) -> None:
    response = client.get("/alerts.atom?topic=gossip&lang=ar")
    assert response.status_code == 422
    assert "topic" in response.json()["error"]


def test_feed_language_from_accept_language(client: TestClient) -> None:
    parsed = feedparser.parse(client.get("/alerts.atom", headers={"accept-language": "ar"}).content)
    assert parsed.feed.language == "ar"
    assert parsed.feed.title == "تنبيهات سورا"


def test_unknown_feed_language_is_a_json_422(client: TestClient) -> None:
    response = client.get("/alerts.atom?lang=fr")
    assert response.status_code == 422
    assert "lang" in response.json()["error"]

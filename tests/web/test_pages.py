"""The status page: both languages, the language choice, state with sources,
escaping of feed text, security headers, static CSS, HTML error pages."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from sorawatch.events import Event, EventLog
from sorawatch.projections import apply
from sorawatch.vocabulary import STATUSES
from sorawatch.web.security import CSP
from sorawatch.web.view import negotiate
from tests.conftest import REPO
from tests.web.seed import EVIL_URL, seed, source

HTML = {"accept": "text/html"}


def html_attrs(body: str) -> tuple[str, str]:
    match = re.search(r'<html lang="(\w+)" dir="(\w+)">', body)
    assert match, body[:200]
    return match.group(1), match.group(2)


@pytest.mark.parametrize(
    ("query", "header", "expected"),
    [
        (None, None, "en"),
        ("ar", None, "ar"),
        ("en", "ar", "en"),
        (None, "ar-EG,ar;q=0.9,en;q=0.8", "ar"),
        (None, "fr-FR,en;q=0.5,ar;q=0.9", "ar"),
        (None, "en-GB,en;q=0.9,ar;q=0.1", "en"),
        ("xx", "ar", "ar"),
        (None, "de, fr;q=bogus", "en"),
    ],
)
def test_negotiate(query: str | None, header: str | None, expected: str) -> None:
    assert negotiate(query, header) == expected


def test_empty_status_page_in_both_languages(client: TestClient) -> None:
    en = client.get("/", headers=HTML)
    assert en.status_code == 200
    assert html_attrs(en.text) == ("en", "ltr")
    assert "We have not seen reliable news about Sora" in en.text
    assert 'href="?lang=ar"' in en.text  # the switch

    ar = client.get("/?lang=ar")
    assert html_attrs(ar.text) == ("ar", "rtl")
    assert "لم نرصد بعد خبرًا موثوقًا عن حالة سورا" in ar.text
    assert 'href="?lang=en"' in ar.text
    assert ar.headers["vary"] == "Accept-Language"


def test_accept_language_picks_arabic(client: TestClient) -> None:
    page = client.get("/", headers={"accept-language": "ar-SA,ar;q=0.9,en;q=0.5"})
    assert html_attrs(page.text) == ("ar", "rtl")


def test_status_page_shows_state_timeline_and_sources(client: TestClient, log: EventLog) -> None:
    seed(log)
    en = client.get("/?lang=en").text
    assert "Released" in en
    assert "Version: \u2068Sora 2\u2069" in en
    assert "Since \u206830 September 2025\u2069" in en
    assert "$200/month" in en
    assert "Disney" in en
    assert "Sora status: Research preview → Released (Sora 2)" in en
    assert 'href="https://www.theverge.com/sora-2?utm=1&amp;x=2"' in en
    assert "Sora partnership: Disney" in en
    # Newest first: the Disney alert (December) comes before the status alert (September).
    assert en.index("Sora partnership: Disney") < en.index("Sora status:")

    ar = client.get("/?lang=ar").text
    assert "متاح للجميع" in ar
    assert "سبتمبر" in ar  # Babel's Arabic month name
    assert "ديسمبر" in ar
    assert "شراكة سورا: \u2068Disney\u2069" in ar  # a Latin name isolated in Arabic
    assert "الأخبار المرصودة" in ar
    # The original Arabic headline keeps its own language and direction.
    assert 'lang="ar" dir="rtl">أوبن إيه آي تطلق سورا 2 للجميع' in ar


def test_feed_text_is_escaped_and_bad_links_dropped(client: TestClient, log: EventLog) -> None:
    seed(log)
    for lang in ("en", "ar"):
        body = client.get(f"/?lang={lang}").text
        assert "<script>" not in body
        assert "&lt;script&gt;alert(" in body
        assert EVIL_URL not in body
        assert "<b>Press</b>" not in body
        assert 'href="https://example.com/a?b=1&amp;c=&lt;2&gt;"' in body
        assert "\x01" not in body


def test_security_headers_on_every_kind_of_response(client: TestClient) -> None:
    for method, path, kwargs in (
        ("GET", "/", {}),
        ("GET", "/?lang=ar", {}),
        ("GET", "/static/style.css", {}),
        ("GET", "/healthz", {}),
        ("GET", "/nope", {"headers": HTML}),
        ("GET", "/api/webhooks", {}),
        ("POST", "/subscribe", {"content": b"x" * (70 * 1024)}),
    ):
        response = client.request(method, path, **kwargs)
        assert response.headers["content-security-policy"] == CSP, path
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-frame-options"] == "DENY"


def test_csp_forbids_scripts_and_pages_use_none(client: TestClient) -> None:
    assert "default-src 'none'" in CSP
    assert "script-src" not in CSP
    body = client.get("/").text
    assert "<script" not in body


def test_stylesheet_is_served_locally_and_responsive(client: TestClient) -> None:
    css = client.get("/static/style.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert "@media" in css.text
    page = client.get("/").text
    assert 'name="viewport"' in page
    assert "http://" not in re.sub(r'href="http[^"]*"', "", page.split("<main>")[0])


@pytest.mark.parametrize("lang", ["en", "ar"])
def test_unknown_page_is_a_404_page_in_the_language(client: TestClient, lang: str) -> None:
    response = client.get(f"/no/such/page?lang={lang}", headers=HTML)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert ("Page not found" if lang == "en" else "الصفحة غير موجودة") in response.text


def test_unknown_page_without_html_accept_is_json(client: TestClient) -> None:
    response = client.get("/no/such/page", headers={"accept": "application/json"})
    assert response.status_code == 404
    assert response.json() == {"error": "nothing here: /no/such/page"}


def test_wrong_method_on_a_page_is_405(client: TestClient) -> None:
    response = client.delete("/", headers=HTML)
    assert response.status_code == 405
    assert "Not allowed here" in response.text


def test_reported_changes_and_ended_facts_are_shown_as_such(
    client: TestClient, log: EventLog
) -> None:
    from sorawatch.events import Event
    from sorawatch.projections import apply

    def write(event: Event) -> None:
        log.append(event)
        apply(log.redis, log.keys, event)

    seed(log)
    after = {"value": "paused", "version": "Sora 2"}
    write(Event.new("change.reported", {
        "claim": "status:sora 2|paused", "topic": "status", "key": "status:Sora 2",
        "before": None, "after": after, "since": "2025-10-01T10:00:00Z",
        "publisher": "Rumour Blog", "story": "st_x", "item_event": "item.seen:x",
    }, "x"))  # fmt: skip
    write(Event.new("state.changed", {
        "topic": "partnership", "key": "partner:Disney", "before": {"partner": "Disney", "active": True},
        "after": {"partner": "Disney", "active": False}, "since": "2026-03-24T22:30:00Z",
    }, "partnership", "end"))  # fmt: skip
    en = client.get("/?lang=en").text
    assert "Reported, not yet confirmed" in en
    assert "Sora status: Paused (Sora 2)" in en
    assert "Rumour Blog" in en
    ended = en[en.index('id="ended"') :]
    assert "Disney" in ended
    assert 'datetime="2026-03-24T22:30:00Z"' in ended
    ar = client.get("/?lang=ar").text
    assert "أخبار لم تتأكد بعد" in ar


def test_404_language_switch_stays_on_the_site(client: TestClient) -> None:
    for path in ("//evil.example/login", "///evil.example/x", "/%2F%2Fevil.example/login"):
        page = client.get("http://testserver" + path + "?lang=en&x=1", headers=HTML)
        assert page.status_code == 404
        assert "evil.example/" not in page.text.split("<main")[0]
        switch = re.search(r'<a class="switch" href="([^"]*)"', page.text)
        assert switch is not None
        assert switch.group(1) == "?x=1&amp;lang=ar"


def _between(text: str, start: str, end: str) -> str:
    return text[text.index(start) : text.index(end, text.index(start))]


@pytest.mark.parametrize("lang", ["en", "ar"])
def test_status_page_tells_the_story_of_confirmed_changes(
    client: TestClient, log: EventLog, lang: str
) -> None:
    """The timeline of confirmed changes: newest first, each with its date, topic,
    before → after, since and until, and its sources; names isolated in Arabic."""
    seed(log)
    base = {"before": None, "evidence": source("https://www.theverge.com/plus", "Plus for Sora", "The Verge")}  # fmt: skip
    for n, (topic, before, after, since) in enumerate([
        ("pricing", {"plan": "Pro", "amount": 200, "currency": "USD", "period": "month"},
         {"plan": "Pro", "amount": 250, "currency": "USD", "period": "month"}, "2025-11-02T10:00:00Z"),
        ("status", {"value": "released", "version": "Sora 2"},
         {"value": "paused", "version": "Sora 2"}, "2025-12-20T10:00:00Z"),
    ]):  # fmt: skip
        data = {**base, "topic": topic, "before": before, "after": after, "since": since}
        event = Event.new("state.changed", data, topic, 10 + n)
        log.append(event)
        apply(log.redis, log.keys, event)
    body = client.get(f"/?lang={lang}").text
    changes = _between(body, '<section id="changes"', "</section>")
    items = changes.split('<li class="change"')[1:]
    assert [i.split('datetime="', 1)[1][:10] for i in items] == [
        "2025-12-20", "2025-11-02", "2025-09-30", "2025-09-30", "2025-09-30",
    ]  # fmt: skip
    paused, repriced = items[0], items[1]
    released = next(i for i in items if 'data-topic="status"' in i and i is not paused)
    if lang == "en":
        assert "Sora status: Released (Sora 2) → Paused (Sora 2)" in paused
        assert "Since \u206820 December 2025\u2069, still in force" in paused
        assert "Sora pricing: Pro $200/month → $250/month" in repriced
        # The release was in force until the pause.
        assert "From \u206830 September 2025\u2069 until \u206820 December 2025\u2069" in released
    else:
        assert "متاح للجميع (\u2068Sora 2\u2069) ← متوقف مؤقتًا (\u2068Sora 2\u2069)" in paused
        assert "ديسمبر" in paused
        assert "\u2068Pro\u2069" in repriced  # the plan's Latin name, isolated
        assert "من \u206830 سبتمبر 2025\u2069 حتى \u206820 ديسمبر 2025\u2069" in released
    assert 'href="https://www.theverge.com/plus"' in repriced
    # The status now is paused, and says so in its colour's hook.
    assert 'class="status-value" data-status="paused"' in body


def test_status_colours_mean_something() -> None:
    """Green only for released / expanded / new version; paused and delayed amber,
    discontinued grey, announced / preview / limited a neutral blue."""
    css = (REPO / "templates" / "web" / "static" / "style.css").read_text("utf-8")
    colours = dict(re.findall(r"--(\w+): (#[0-9a-f]{6});", css))
    rules = re.findall(
        r"((?:\.status-value\[data-status=\"\w+\"\],?\s*)+)\{ color: var\(--(\w+)\); \}", css
    )
    tone = {
        status: name
        for selectors, name in rules
        for status in re.findall(r'data-status="(\w+)"', selectors)
    }
    assert {s: tone.get(s) for s in STATUSES} == {
        "announced": "neutral", "research_preview": "neutral", "limited_access": "neutral",
        "delayed": "wait", "released": "good", "new_version": "good", "expanded": "good",
        "paused": "wait", "discontinued": "gone",
    }  # fmt: skip
    assert len({colours["good"], colours["neutral"], colours["wait"], colours["gone"]}) == 4

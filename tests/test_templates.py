"""Every mail template rendered in Arabic and English; labels, dates, money; escaping."""

from __future__ import annotations

from typing import Any

import pytest

from sorawatch import render
from sorawatch.vocabulary import STATUSES
from sorawatch.workers.email import subject_for


def alert(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "alert_id": "al_1",
        "topic": "status",
        "kind": "change",
        "before": {"value": "research_preview", "version": None},
        "after": {"value": "released", "version": None},
        "facts": {"status": "released"},
        "title": "Sora <script>alert(1)</script> is out",
        "title_lang": "en",
        "summary": "OpenAI opened Sora to everyone.",
        "sources": [
            {
                "url": "https://news.example.test/sora?a=1&b=2",
                "title": "Sora <script>alert(1)</script> is out",
                "publisher": "Example News",
                "lang": "en",
                "published": "2025-02-03T10:00:00Z",
            },
            {
                "url": "javascript:alert(1)",
                "title": "evil",
                "publisher": "Evil",
                "lang": "en",
                "published": None,
            },
        ],
        "story": "st_1",
        "raised_at": "2025-02-03T10:05:00Z",
        "baseline": False,
    }
    base.update(changes)
    return base


@pytest.mark.parametrize("value", STATUSES)
def test_every_status_has_a_label_in_both_languages(value: str) -> None:
    en = render.status_label(value, "en")
    ar = render.status_label(value, "ar")
    assert en
    assert ar
    assert en != ar
    assert "_" not in en
    assert any("\u0600" <= c <= "\u06ff" for c in ar)


def test_headlines_read_like_the_issue_says() -> None:
    assert render.headline(alert(), "en") == "Sora status: Research preview → Released"
    assert render.headline(alert(), "ar") == "حالة سورا: معاينة بحثية ← متاح للجميع"
    pricing = alert(
        topic="pricing",
        before=None,
        after={"plan": "ChatGPT Plus", "amount": 20, "currency": "USD", "period": "month"},
    )
    assert render.headline(pricing, "en") == "Sora pricing: ChatGPT Plus $20/month"
    # Latin names and prices inside Arabic are isolated (FSI ... PDI).
    assert render.headline(pricing, "ar").startswith("أسعار سورا: \u2068ChatGPT Plus\u2069")
    assert "شهريًا" in render.headline(pricing, "ar")
    partner = alert(topic="partnership", before=None, after={"partner": "Disney"})
    assert render.headline(partner, "en") == "Sora partnership: Disney"
    news = alert(kind="news", before=None, after=None)
    assert render.headline(news, "en") == "Sora <script>alert(1)</script> is out"


def test_dates_and_money_are_localized() -> None:
    assert render.format_date("2025-02-03T10:00:00Z", "en", "date") == "3 February 2025"
    assert "فبراير" in render.format_date("2025-02-03T10:00:00Z", "ar", "date")
    assert render.format_money(20, "USD", "en") == "$20"
    assert render.format_money("19.99", "EUR", "en") == "€19.99"
    assert "US$" in render.format_money(20, "USD", "ar")
    assert render.format_money(None, "USD", "en") == ""


def test_languages_of_a_preference() -> None:
    assert render.languages("both") == ("ar", "en")
    assert render.languages("ar") == ("ar",)
    with pytest.raises(ValueError, match="klingon"):
        render.languages("klingon")


@pytest.mark.parametrize("langs", [("ar",), ("en",), ("ar", "en")])
def test_alert_templates_render_in_each_language(langs: tuple[str, ...]) -> None:
    context = {
        "alert": alert(),
        "langs": langs,
        "unsubscribe_url": "https://watch.example.test/unsubscribe/TOKEN",
        "public_url": "https://watch.example.test",
    }
    html = render.render("email/alert.html.j2", **context)
    text = render.render("email/alert.txt.j2", **context)
    first = langs[0]
    assert f'<html lang="{first}" dir="{render.direction(first)}">' in html
    for lang in langs:
        assert f'<div lang="{lang}" dir="{render.direction(lang)}" class="wrapper"' in html
        assert render.headline(alert(), lang) in html
        assert render.headline(alert(), lang) in text
    assert html.count("https://watch.example.test/unsubscribe/TOKEN") == len(langs)
    assert text.count("https://watch.example.test/unsubscribe/TOKEN") == len(langs)
    # A title from a feed is text, never markup; a javascript: link becomes "#".
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "javascript:" not in html
    assert "javascript:" not in text
    assert 'href="https://news.example.test/sora?a=1&amp;b=2"' in html
    assert "https://news.example.test/sora?a=1&b=2" in text  # text mail is not HTML-escaped
    assert ("المصادر" in html) == ("ar" in langs)
    assert ("Sources" in html) == ("en" in langs)


@pytest.mark.parametrize("langs", [("ar",), ("en",), ("ar", "en")])
def test_confirm_templates_render_in_each_language(langs: tuple[str, ...]) -> None:
    context = {
        "langs": langs,
        "confirm_url": "https://watch.example.test/confirm/TOK",
        "public_url": "https://watch.example.test",
    }
    html = render.render("email/confirm.html.j2", **context)
    text = render.render("email/confirm.txt.j2", **context)
    assert html.count("https://watch.example.test/confirm/TOK") == len(langs)
    assert text.count("https://watch.example.test/confirm/TOK") == len(langs)
    assert ("48 ساعة" in text) == ("ar" in langs)
    assert ("48 hours" in text) == ("en" in langs)
    assert f'dir="{render.direction(langs[0])}"' in html


def test_first_status_and_foreign_news_headlines() -> None:
    first = alert(before=None)
    assert render.headline(first, "en") == "Sora status: Released"
    assert render.headline(first, "ar") == "حالة سورا: متاح للجميع"
    news = alert(kind="news", before=None, after=None, title="Sora is out", sources=[])
    assert render.headline(news, "en") == "Sora is out"
    assert render.headline(news, "ar") == "\u2068Sora is out\u2069 (بالإنجليزية)"
    subject = subject_for(news, "ar")
    assert subject.count("خبر عن سورا") == 1, subject


def test_prices_and_latin_names_inside_arabic_keep_their_order() -> None:
    """Through a bidi renderer (python-bidi): "$20" in Arabic stays "$20", and an
    English sentence keeps its full stop, once isolated (``render.embed``)."""
    from bidi import get_display

    def shown(text: str) -> str:
        return str(get_display(text, base_dir="R")).translate(
            str.maketrans("", "", "\u2068\u2069\u200f")
        )

    assert shown("بسعر $20 شهريًا") == "اًيرهش 20$ رعسب"  # the bug, without isolates
    assert shown(f"بسعر {render.embed('$20', 'ar')} شهريًا") == "اًيرهش $20 رعسب"
    sentence = "Sora 2 is open, OpenAI said."
    assert shown(f"{render.embed(sentence, 'ar')} المصدر: {render.embed('Example', 'ar')}.") == (
        ".Example :ردصملا Sora 2 is open, OpenAI said."
    )
    assert render.embed("متاح للجميع", "ar") == "متاح للجميع"  # Arabic in Arabic: as it is
    assert render.embed("Disney", "en") == "Disney"
    assert render.embed("سورا", "en") == "\u2068سورا\u2069"
    assert render.line("حالة سورا", "ar") == "\u200f\u2068حالة سورا\u2069"
    assert render.line("Sora status", "en") == "Sora status"

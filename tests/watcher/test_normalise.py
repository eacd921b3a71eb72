"""Normalising: canonical URLs, plain text, keys, hashes and languages are stable and clean."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from sorawatch.watcher.normalise import (
    canonical_url,
    content_hash,
    iso_date,
    item_key,
    language,
    plain_text,
    script_lang,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            "HTTPS://Example.COM:443/a/b?utm_source=x&b=2&a=1&fbclid=z#frag",
            "https://example.com/a/b?a=1&b=2",
        ),
        ("http://example.com:80", "http://example.com/"),
        (
            "http://example.com:8080/x?ref=rss&gclid=1&mc_cid=2&mc_eid=3&q=sora",
            "http://example.com:8080/x?q=sora",
        ),
        ("https://example.com/x?UTM_Medium=a&keep=", "https://example.com/x?keep="),
        ("javascript:alert(1)", None),
        ("mailto:a@example.com", None),
        ("", None),
        ("http://[::1]:99999/", None),
    ],
)
def test_canonical_url(raw: str, expected: str | None) -> None:
    assert canonical_url(raw) == expected


def test_canonical_url_resolves_relative_links() -> None:
    assert (
        canonical_url("/news/1?utm_x=1", "https://site.example/feed/")
        == "https://site.example/news/1"
    )


def test_plain_text() -> None:
    html = (
        "<p>Sora&nbsp;is <b>here</b> &amp; free</p><script>alert('x')</script>"
        "<style>p{}</style><ul><li>one</li><li>two</li></ul>"
    )
    assert plain_text(html) == "Sora is here & free one two"
    assert plain_text("ｓｏｒａ　２") == "sora 2"  # NFKC folds full-width forms
    assert plain_text("a < b and c > d") == "a < b and c > d"
    assert plain_text(None) == ""
    assert plain_text("line\x00one\n\n\tline two") == "lineone line two"


def test_keys_and_hashes_are_stable() -> None:
    assert item_key(" guid-1 ", "https://x.example/", "t") == "guid-1"
    assert item_key(None, "https://x.example/", "t") == "https://x.example/"
    assert item_key(None, None, "Sora") == item_key("", None, "Sora")
    assert item_key(None, None, "Sora").startswith("title:")
    assert content_hash("a", "b") == content_hash("a", "b")
    assert content_hash("a", "b") != content_hash("a", "c")
    assert content_hash("ab", "") != content_hash("a", "b")


def test_language_order_and_script() -> None:
    assert language("ar-EG", "en", "en", text="x") == "ar"
    assert language(None, "en", "ar", text="سورا") == "en"
    assert language(None, None, "en-US", text="سورا") == "en"
    assert language("fr", None, None, text="أوبن إيه آي تطلق سورا OpenAI Sora") == "ar"
    assert language(None, None, None, text="OpenAI launches Sora") == "en"
    assert script_lang("") == "en"


def test_iso_dates_at_the_edges() -> None:
    assert iso_date(datetime(1, 1, 1, tzinfo=UTC)) == "0001-01-01T00:00:00Z"
    assert iso_date(datetime(9999, 12, 31, 23, 59, tzinfo=UTC)) == "9999-12-31T23:59:00Z"
    assert iso_date(datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=3)))) is None
    assert iso_date(None) is None

"""Properties (hypothesis) of the two normalisations every item goes through.

URL canonicalisation (``sorawatch.watcher.normalise.canonical_url``; the story-level property
is ``tests/hostile/test_inputs.py``): idempotent; no tracking parameter and no
fragment survives; the order of the query parameters does not matter.

Arabic normalisation (``sorawatch.arabic``; idempotence is ``tests/test_arabic.py``):
no diacritic, tatweel or folded letter form remains, and Arabic-Indic and Persian
digits become ASCII digits of the same value.

Each example tried is counted in the reliability table.
"""

from __future__ import annotations

import random
import re
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from sorawatch.arabic import normalize_arabic, normalize_for_matching
from sorawatch.watcher.normalise import TRACKING_PARAMS, TRACKING_PREFIXES, canonical_url
from tests.reliability import FIGURES

pytestmark = pytest.mark.hostile

URLS = "URL canonicalisation (hypothesis examples)"
ARABIC = "Arabic normalisation (hypothesis examples)"

# -- URLs -------------------------------------------------------------------------------

TRACKING = [
    *sorted(TRACKING_PARAMS),
    *("utm_source", "UTM_Medium", "utm_campaign", "Utm_Content", "utm_", "mc_cid", "MC_EID"),
]
KEEP = ["id", "q", "page", "lang", "p", "a", "b", "", "story id", "ترتيب", "x+y", "k%"]

_host = st.sampled_from(
    ["example.com", "News.Example.TEST", "127.0.0.1", "[::1]", "[2001:DB8::1]",
     "xn--mgbh0fb.example", "a-b.c.example.org", "أخبار.example"]
)  # fmt: skip
_segment = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="/?#\\\x00\t\n\r"), max_size=8
)
_value = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=10)
_param = st.tuples(st.sampled_from(KEEP + TRACKING), _value)
_fragment = st.none() | st.text(max_size=8)


@st.composite
def urls(draw: st.DrawFn) -> tuple[str, list[tuple[str, str]], str | None, str]:
    """(URL, its query parameters, its fragment, the URL without query and fragment)."""
    scheme = draw(st.sampled_from(["http", "https", "HTTP", "Https"]))
    port = draw(st.sampled_from(["", ":80", ":443", ":8080", ":0443"]))
    path = "/".join(quote(s, safe="%~!$'()*,;:@") for s in draw(st.lists(_segment, max_size=4)))
    base = f"{scheme}://{draw(_host)}{port}/{path}"
    params = draw(st.lists(_param, max_size=6))
    fragment = draw(_fragment)
    return build(base, params, fragment), params, fragment, base


def build(base: str, params: list[tuple[str, str]], fragment: str | None) -> str:
    query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params)
    return base + ("?" + query if query else "") + ("#" + quote(fragment) if fragment else "")


def is_tracking(name: str) -> bool:
    return name.lower() in TRACKING_PARAMS or name.lower().startswith(TRACKING_PREFIXES)


@hsettings(max_examples=400, deadline=None)
@given(urls())
def test_canonical_urls_are_idempotent_and_clean(
    drawn: tuple[str, list[tuple[str, str]], str | None, str],
) -> None:
    FIGURES.hostile_cases(URLS, 1)
    url, _, _, _ = drawn
    canon = canonical_url(url)
    assert canon is not None, url
    assert canonical_url(canon) == canon, (url, canon)
    parts = urlsplit(canon)
    assert "#" not in canon
    assert parts.fragment == ""
    assert parts.scheme in ("http", "https")
    assert parts.netloc == parts.netloc.lower()
    assert parts.port != {"http": 80, "https": 443}[parts.scheme]  # no default port
    kept = parse_qsl(parts.query, keep_blank_values=True)
    assert not [k for k, _ in kept if is_tracking(k)], (url, canon)


@hsettings(max_examples=400, deadline=None)
@given(urls(), st.randoms(use_true_random=False), st.lists(st.sampled_from(TRACKING), max_size=3))
def test_query_order_tracking_and_fragment_do_not_change_the_canonical_url(
    drawn: tuple[str, list[tuple[str, str]], str | None, str],
    rng: random.Random,
    extra: list[str],
) -> None:
    FIGURES.hostile_cases(URLS, 1)
    url, params, _, base = drawn
    shuffled = list(params)
    rng.shuffle(shuffled)
    dressed = shuffled + [(name, "tracked") for name in extra]
    assert canonical_url(build(base, dressed, "top")) == canonical_url(url), (url, dressed)
    plain = [(k, v) for k, v in params if not is_tracking(k)]
    assert canonical_url(build(base, plain, None)) == canonical_url(url)


# -- Arabic -------------------------------------------------------------------------------

_DIACRITICS = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0640]")
FOLDED = "أإآٱٲٳىةؤئیکە"  # each folds to another letter
INDIC = "٠١٢٣٤٥٦٧٨٩"
PERSIAN = "۰۱۲۳۴۵۶۷۸۹"

_arabic_text = st.text(
    alphabet=st.one_of(
        st.characters(min_codepoint=0x0600, max_codepoint=0x06FF),  # Arabic
        st.characters(min_codepoint=0xFB50, max_codepoint=0xFDFF),  # presentation forms A
        st.characters(min_codepoint=0xFE70, max_codepoint=0xFEFF),  # presentation forms B
        st.sampled_from(" \u200c\u200d\u200f\u00a0abcSORA0123456789-.,%"),
    ),
    max_size=60,
)


@hsettings(max_examples=500, deadline=None)
@given(_arabic_text)
def test_no_diacritic_tatweel_or_folded_form_remains(text: str) -> None:
    FIGURES.hostile_cases(ARABIC, 1)
    folded = normalize_arabic(text)
    assert not _DIACRITICS.search(folded), (text, folded)
    assert not set(folded) & set(FOLDED + INDIC + PERSIAN), (text, folded)
    assert normalize_arabic(folded) == folded
    matched = normalize_for_matching(text)
    assert not _DIACRITICS.search(matched)
    assert not set(matched) & set(INDIC + PERSIAN)


@hsettings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=0, max_value=10**12),
    st.sampled_from([INDIC, PERSIAN]),
    st.text(alphabet="\u064b\u064e\u0651\u0640", max_size=2),
)
def test_arabic_indic_digits_become_ascii(number: int, digits: str, mark: str) -> None:
    FIGURES.hostile_cases(ARABIC, 1)
    written = "".join(digits[int(d)] for d in str(number))
    assert normalize_arabic(f"سعر {written}{mark} دولار") == f"سعر {number} دولار"
    assert normalize_arabic(written) == str(number)

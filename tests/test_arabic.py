"""Arabic normalisation: the spelling variants news uses fold to one form."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sorawatch.arabic import (
    detect_lang,
    has_arabic,
    normalize_arabic,
    normalize_for_matching,
    strip_prefixes,
)


@pytest.mark.parametrize(
    ("raw", "folded"),
    [
        ("سُورَا", "سورا"),  # harakat
        ("دولارًا شهريًا", "دولارا شهريا"),  # tanween
        ("الذكاء الاصطناعيّ", "الذكاء الاصطناعي"),  # shadda
        ("أوبـــن إيه آي", "اوبن ايه اي"),  # tatweel, hamza on and under alef, madda
        ("ٱلفيديو", "الفيديو"),  # alef wasla
        ("مستوى", "مستوي"),  # alef maqsura
        ("منصة", "منصه"),  # ta marbuta
        ("مسؤول", "مسوول"),  # hamza on waw
        ("هيئة", "هييه"),  # hamza on ya
        ("٢٠٢٥", "2025"),  # Arabic-Indic digits
        ("۲۰ دلار", "20 دلار"),  # Persian digits
        ("١٫٣", "1.3"),  # Arabic decimal separator
        ("١٬٠٠٠", "1,000"),  # Arabic thousands separator
        ("ﻻ", "لا"),  # presentation form (NFKC)
        ("سو\u200cرا", "سورا"),  # zero-width non-joiner
        ("Toys “R” Us — Sora", 'Toys "R" Us - Sora'),  # quotes and dashes
        ("Sora 2", "Sora 2"),  # Latin untouched
    ],
)
def test_normalize_arabic_folds_variants(raw: str, folded: str) -> None:
    assert normalize_arabic(raw) == folded


def test_normalize_arabic_empty() -> None:
    assert normalize_arabic("") == ""


def test_normalize_for_matching_lowercases_latin_and_collapses_space() -> None:
    text = "  أطلقت   OpenAI\nنموذج «سُورا ٢»  "
    assert normalize_for_matching(text) == 'اطلقت openai نموذج "سورا 2"'
    assert normalize_for_matching(text, "ar") == normalize_for_matching(text, "en")


@pytest.mark.parametrize(
    ("token", "readings"),
    [
        ("وسورا", ("وسورا", "سورا")),
        ("لسورا", ("لسورا", "سورا")),
        ("بسورا", ("بسورا", "سورا")),
        ("فسورا", ("فسورا", "سورا")),
        ("والفيديو", ("والفيديو", "الفيديو", "فيديو")),
        ("بالذكاء", ("بالذكاء", "الذكاء", "ذكاء")),
        ("للمستخدمين", ("للمستخدمين", "لمستخدمين", "مستخدمين")),
        ("لsora", ("لsora", "sora")),
        ("sora", ("sora",)),
        ("بلد", ("بلد",)),  # no prefix leaves a stem shorter than three letters
    ],
)
def test_strip_prefixes(token: str, readings: tuple[str, ...]) -> None:
    assert strip_prefixes(token) == readings


def test_detect_lang_and_has_arabic() -> None:
    assert detect_lang("أطلقت شركة OpenAI نموذج Sora") == "ar"
    assert detect_lang("OpenAI launches Sora") == "en"
    assert has_arabic("Sora سورا")
    assert not has_arabic("Sora 2")


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x6FF), max_size=60))
def test_normalisation_is_idempotent(text: str) -> None:
    once = normalize_arabic(text)
    assert normalize_arabic(once) == once
    matched = normalize_for_matching(text)
    assert normalize_for_matching(matched) == matched

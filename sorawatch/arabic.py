"""Arabic text normalisation for matching (pure functions, no dependencies).

News in Arabic writes the same word many ways: with or without diacritics and
tatweel, with any of four alef forms, ى or ي at the end, ة or ه, Arabic-Indic
or Persian digits. Matching (the classifier) and near-duplicate detection (story
dedupe) both compare text after folding all of these to one form.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Harakat, Quranic annotation marks and the superscript alef: they change reading,
# not identity, and most news text omits them anyway.
_DIACRITICS = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed]")

_FOLD: dict[int, str] = {
    0x0640: "",  # tatweel (kashida): pure stretching
    # Invisible direction and joining marks that copy-paste leaves inside words.
    0x200C: "",
    0x200D: "",
    0x200E: "",
    0x200F: "",
    0x061C: "",
    0xFEFF: "",
    0x00AD: "",
    # Alef forms → bare alef.
    0x0623: "ا",  # أ
    0x0625: "ا",  # إ
    0x0622: "ا",  # آ
    0x0671: "ا",  # ٱ
    0x0672: "ا",
    0x0673: "ا",
    0x0649: "ي",  # ى alef maqsura → ya (writers swap them at word end)
    0x0629: "ه",  # ة ta marbuta → ha (likewise)
    # Hamza seats vary with spelling habits (مسؤول / مسئول).
    0x0624: "و",  # ؤ
    0x0626: "ي",  # ئ
    # Persian letters common in copy-pasted text.
    0x06CC: "ي",  # Farsi yeh
    0x06A9: "ك",  # keheh
    0x06D5: "ه",  # ae
    # Arabic punctuation with a Latin twin, so number and clause patterns see one form.
    0x066B: ".",  # ٫ decimal separator
    0x066C: ",",  # ٬ thousands separator
    0x066A: "%",  # ٪
}
# Arabic-Indic (٠-٩) and extended/Persian (۰-۹) digits → ASCII.
_FOLD.update({0x0660 + i: str(i) for i in range(10)})
_FOLD.update({0x06F0 + i: str(i) for i in range(10)})

# Quotes and dashes in many shapes; patterns are written with the ASCII ones.
_LATIN_FOLD: dict[int, str] = {
    0x2018: "'",
    0x2019: "'",
    0x201A: "'",
    0x201B: "'",
    0x2032: "'",
    0x201C: '"',
    0x201D: '"',
    0x201E: '"',
    0x00AB: '"',
    0x00BB: '"',
    0x2010: "-",
    0x2011: "-",
    0x2012: "-",
    0x2013: "-",
    0x2014: "-",
    0x2212: "-",
    0x00A0: " ",
}
_FOLD.update(_LATIN_FOLD)

_ARABIC_LETTER = re.compile("[\u0600-\u06ff]")

# Attached prefixes, longest first so "وال" is tried before "و". Conjunctions (و، ف),
# prepositions (ب، ل، ك), the article (ال) and their usual combinations; ل + ال is
# written لل.
PREFIXES: tuple[str, ...] = (
    "وبال",
    "فبال",
    "وكال",
    "فكال",
    "وال",
    "فال",
    "بال",
    "كال",
    "ولل",
    "فلل",
    "لل",
    "ال",
    "وب",
    "فب",
    "ول",
    "فل",
    "وك",
    "فك",
    "و",
    "ف",
    "ب",
    "ل",
    "ك",
)

# A prefix is only stripped when a stem of at least this many letters remains:
# "بلد" must not lose its ب and leave "لد"; no real stem we match is shorter.
_MIN_STEM = 3


def normalize_arabic(text: str) -> str:
    """Fold Arabic spelling variants to one form; leaves Latin text as it is (apart from NFKC).

    NFKC first (presentation forms → letters), then diacritics and tatweel removed,
    alef forms → ا, ى → ي, ة → ه, ؤ → و, ئ → ي, Arabic-Indic and Persian digits →
    ASCII, invisible marks dropped, curly quotes and dashes → ASCII. The result may be
    shorter than the input.
    """
    if not text or text.isascii():
        return text  # nothing to fold: every folded character is outside ASCII
    text = unicodedata.normalize("NFKC", text)
    text = text.translate(_FOLD)
    return _DIACRITICS.sub("", text)


def has_arabic(text: str) -> bool:
    """True when the text holds at least one Arabic-script character."""
    return _ARABIC_LETTER.search(text) is not None


def normalize_for_matching(text: str, lang: str | None = None) -> str:
    """Text folded for matching: Arabic normalised, Latin lowercased, whitespace collapsed.

    ``lang`` is accepted for symmetry with callers that know it; the folding is the
    same for every language because news in either language mixes scripts
    ("أطلقت OpenAI نموذج Sora").
    """
    del lang  # one folding for all: see the docstring
    folded = normalize_arabic(text).lower()
    return " ".join(folded.split())


@lru_cache(maxsize=4096)
def strip_prefixes(token: str) -> tuple[str, ...]:
    """Every reading of an Arabic token with its attached prefixes removed, longest first.

    ``"وسورا"`` → ``("وسورا", "سورا")``; ``"والفيديو"`` → ``("والفيديو", "الفيديو",
    "فيديو")``. The token itself always comes first; Latin tokens come back alone.
    The token should already be normalised (``normalize_arabic``).
    """
    readings = [token]
    if not token or not has_arabic(token[0]):
        return tuple(readings)
    stems = {
        token[len(prefix) :]
        for prefix in PREFIXES
        if token.startswith(prefix) and len(token) - len(prefix) >= _MIN_STEM
    }
    readings.extend(sorted(stems, key=lambda stem: (-len(stem), stem)))
    return tuple(readings)


def detect_lang(text: str) -> str:
    """``"ar"`` when Arabic letters outnumber Latin ones, else ``"en"``."""
    arabic = latin = 0
    for ch in text:
        if "\u0600" <= ch <= "\u06ff":
            arabic += 1
        elif "a" <= ch <= "z" or "A" <= ch <= "Z":
            latin += 1
    return "ar" if arabic > latin else "en"

"""Phrases found in an item in one pass, and the item's text prepared for cue patterns.

Names, places, partners and the other phrase lists are looked up word by word in a
dictionary (Arabic attached prefixes stripped), which is far cheaper than running
hundreds of regular expressions over every item. The text the cue patterns read has
each name, version, product noun and place replaced by a marker of the same length,
so a macro such as {NAME} is one character class and positions stay the same in
both texts.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field

from sorawatch.arabic import has_arabic, normalize_arabic, normalize_for_matching, strip_prefixes

# Private-use characters: never in real text, not word characters.
_MARKS = {"version": "\ue001", "name": "\ue000", "place": "\ue003", "subject": "\ue002"}
_PAD = "\ue00f"
# Marker characters in the input itself would pass for names: they are dropped first.
_UNMARK = dict.fromkeys(range(0xE000, 0xE010))
# Possessive: a macro never stops inside a marker, so a lookahead after it sees what follows.
MARKER_MACROS = {
    "NAME": "[\ue000\ue001]\ue00f*+",
    "VERSION": "\ue001\ue00f*+",
    "SUBJ": "[\ue000-\ue002]\ue00f*+",
    "PLACE": "\ue003\ue00f*+",
}
# Where two marked phrases cover the same words, the earlier kind wins.
_MARK_ORDER = tuple(_MARKS)

_TOKEN = re.compile(r"\w+")
_RUN = re.compile(r"[^\W_]+|[^\w\s]+|_+")
_TITLE_JOIN = " . "
_AFTER = 1 << 62  # sorts after any end offset, for bisecting (start, end) pairs
# A sentence ends at these when a space or the end follows ("$0.10" stays whole).
_SENTENCE_END = re.compile(r"[.!?؟;؛]+(?=\s|$)")


@dataclass(frozen=True, slots=True)
class Mention:
    kind: str
    label: str
    start: int
    end: int


def phrase_core(phrase: str) -> tuple[str, str]:
    """``(first word, regex)`` for a phrase, matched from its first word onwards.

    Normalised like the text; words apart in the phrase may be joined, hyphenated or
    quoted in the text ("sora 2" matches "Sora-2"); punctuation inside it must be
    there ("u.s." does not match "us"). A leading Arabic article is dropped, since
    the word lookup strips it from the text as well. Raises `ValueError` when empty.
    """
    norm = normalize_for_matching(phrase).strip("#+.,;:!?\"' ")
    if norm.startswith("ال") and len(norm) > 3:
        norm = norm[2:]
    runs = _RUN.findall(norm)
    if not runs or not runs[0][0].isalnum():
        raise ValueError(f"phrase {phrase!r} has no letters or digits")
    parts: list[str] = []
    for i, run in enumerate(runs):
        if run[0].isalnum():
            if i and runs[i - 1][0].isalnum():
                parts.append("[\\s\\-_'\"]*")
            parts.append(re.escape(run))
        else:
            parts.append(f"\\s*[{re.escape(''.join(sorted(set(run))))}]+\\s*")
    right = "(?!\\w)" if has_arabic(norm[-1]) else "(?![a-z0-9])"
    return runs[0], "".join(parts) + right


class PhraseIndex:
    """Every phrase of a lexicon, by kind and label, keyed by its first word."""

    __slots__ = ("_index", "_words", "kinds", "marked")

    # Distinct words remembered with their lookups; news vocabularies stay far below.
    _WORDS_KEPT = 200_000

    def __init__(self) -> None:
        self._index: dict[str, list[tuple[str, str, re.Pattern[str]]]] = {}
        self._words: dict[str, tuple[tuple[int, tuple[str, str, re.Pattern[str]]], ...]] = {}
        self.kinds: set[str] = set()
        self.marked: set[str] = set()  # normalised phrases that cue patterns see as markers

    def add(self, kind: str, label: str, phrase: str) -> None:
        """Index ``phrase``; `ValueError` when it has no letters or digits."""
        key, source = phrase_core(phrase)
        entry = (kind, label, re.compile(source))
        entries = self._index.setdefault(key, [])
        if all(e[:2] != entry[:2] or e[2].pattern != source for e in entries):
            entries.append(entry)
        self.kinds.add(kind)
        if kind in _MARKS:
            self.marked.add(normalize_for_matching(phrase))
        self._words.clear()

    def _lookup(self, token: str) -> tuple[tuple[int, tuple[str, str, re.Pattern[str]]], ...]:
        """(offset of the reading in the word, entry) for each phrase that may start here."""
        arabic = "\u0600" <= token[0] <= "\u06ff"
        readings = strip_prefixes(token) if arabic else (token,)
        found = tuple(
            (len(token) - len(reading), entry)
            for reading in readings
            for entry in self._index.get(reading, ())
        )
        if len(self._words) >= self._WORDS_KEPT:
            self._words.clear()
        self._words[token] = found
        return found

    def find(self, text: str) -> list[Mention]:
        """Every phrase in ``text`` (normalised), left to right. A span starts at the word,
        attached prefixes included, so "وسورا" is one mention."""
        words = self._words
        found = []
        for word in _TOKEN.finditer(text):
            token = word.group()
            hits = words.get(token)
            if hits is None:
                hits = self._lookup(token)
            if not hits:
                continue
            start = word.start()
            for offset, (kind, label, core) in hits:
                m = core.match(text, start + offset)
                if m is not None:
                    found.append(Mention(kind, label, start, m.end()))
        return found


@dataclass(slots=True)
class Prepared:
    """An item's text normalised once, its phrases found once; shared by every step.

    ``text`` has names, versions, product nouns and places replaced by same-length
    markers (for cue patterns); ``plain`` is the normalised text itself.
    """

    text: str
    plain: str
    title_end: int
    summary: str  # as given: partner names are told by their capitals
    mentions: list[Mention]
    sentences: list[tuple[int, int]]
    off_topic: dict[int, bool] = field(default_factory=dict)  # by sentence start

    @classmethod
    def of(cls, index: PhraseIndex, title: str, summary: str) -> Prepared:
        title_n = normalize_for_matching(title).translate(_UNMARK)
        summary_n = normalize_for_matching(summary).translate(_UNMARK)
        plain = f"{title_n}{_TITLE_JOIN}{summary_n}" if title_n else summary_n
        mentions = index.find(plain)
        masks = [m for m in mentions if m.kind == "mask"]
        if masks:  # another Sora ("Sora Ventures"): its name is not ours
            mentions = [m for m in mentions if not _masked(m, masks)]
        text = _mark(plain, mentions)
        return cls(text, plain, len(title_n), summary, mentions, _sentences(text))

    @property
    def kept_summary(self) -> str:
        """The summary normalised with its case kept (only partner names need it)."""
        return " ".join(normalize_arabic(self.summary).split())

    def of_kind(self, kind: str, span: tuple[int, int] | None = None) -> list[Mention]:
        """Mentions of one kind, optionally only those starting inside ``span``."""
        if span is None:
            return [m for m in self.mentions if m.kind == kind]
        lo, hi = span
        return [m for m in self.mentions if m.kind == kind and lo <= m.start < hi]

    @property
    def lead_end(self) -> int:
        """Where the claim zone ends: the headline and the lead's first sentence; an item
        with no headline (a paragraph) stands on its first two sentences."""
        if not self.title_end:
            first = self.sentence_at(0)[1]
            return self.sentence_at(first)[1] if first < len(self.text) else first
        start = self.title_end + len(_TITLE_JOIN)
        if start >= len(self.text):
            return len(self.text)
        return self.sentence_at(start)[1]

    def sentence_at(self, pos: int) -> tuple[int, int]:
        """The sentence holding ``pos`` (the last one past the end)."""
        if not self.sentences:
            return 0, len(self.text)
        at = bisect_right(self.sentences, (pos, _AFTER)) - 1
        return self.sentences[max(at, 0)]


def _masked(m: Mention, masks: list[Mention]) -> bool:
    return m.kind in ("name", "version") and any(k.start < m.end and m.start < k.end for k in masks)


def _mark(text: str, mentions: list[Mention]) -> str:
    """``text`` with the marked kinds replaced by same-length markers.

    Overlapping phrases become one marker over their union, of the kind that comes
    first in `_MARK_ORDER` ("نموذج Sora" and "Sora 2" in "نموذج Sora 2": one version).
    """
    marked = sorted((m for m in mentions if m.kind in _MARKS), key=lambda m: m.start)
    if not marked:
        return text
    groups: list[tuple[int, int, str]] = []
    for m in marked:
        if groups and m.start < groups[-1][1]:
            start, end, kind = groups[-1]
            best = min(kind, m.kind, key=_MARK_ORDER.index)
            groups[-1] = (start, max(end, m.end), best)
        else:
            groups.append((m.start, m.end, m.kind))
    out: list[str] = []
    pos = 0
    for start, end, kind in groups:
        out.append(text[pos:start])
        out.append(_MARKS[kind] + _PAD * (end - start - 1))
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _sentences(text: str) -> list[tuple[int, int]]:
    spans = []
    start = 0
    for m in _SENTENCE_END.finditer(text):
        spans.append((start, m.end()))
        start = m.end()
    if start < len(text):
        spans.append((start, len(text)))
    return spans

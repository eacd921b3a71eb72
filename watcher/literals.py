"""Fast pre-checks for regular expressions: the literal strings a match must contain.

A lexicon holds a few hundred patterns and most of them cannot match a given item.
Python's `re` scans every position of the text for each pattern; a substring test
(`"delay" in text`) is a hundred times cheaper. So each pattern is compiled together
with a set of strings of which any match must contain at least one, and is only run
when one of them occurs in the text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sorawatch import internals

# The parsed form of a pattern is the only reliable source of its literals: private
# (and untyped) modules of re, listed in sorawatch.internals.
sre: Any = internals.sre_constants()
sre_parse: Any = internals.sre_parse()

# Fewer characters than this would be found in nearly every text: not worth checking.
_MIN_LITERAL = 3
_ZERO_WIDTH = {sre.AT, sre.ASSERT, sre.ASSERT_NOT}
_REPEATS = {sre.MAX_REPEAT, sre.MIN_REPEAT, getattr(sre, "POSSESSIVE_REPEAT", sre.MAX_REPEAT)}


def required_literals(source: str) -> frozenset[str] | None:
    """Strings of which every match of ``source`` contains one; None when none is known."""
    try:
        parsed = sre_parse.parse(source)
    except re.error:
        return None
    best = _best(list(parsed))
    if best is None or min(map(len, best)) < _MIN_LITERAL:
        return None
    return frozenset(best)


def _best(items: list[tuple[Any, Any]]) -> set[str] | None:
    """Of the literal sets each element of a sequence requires, the most selective."""
    candidates = []
    for i in range(len(items)):
        found = _prefixes(items[i:])
        if found:
            candidates.append(found)
    for op, av in items:
        inner = _inner(op, av)
        if inner is not None:
            nested = _best(inner)
            if nested:
                candidates.append(nested)
        elif op is sre.BRANCH:
            sets = [_best(list(alt)) for alt in av[1]]
            if all(sets):
                candidates.append(set().union(*sets))  # type: ignore[arg-type]
    if not candidates:
        return None
    return max(candidates, key=lambda s: (min(map(len, s)), -len(s)))


def _inner(op: Any, av: Any) -> list[tuple[Any, Any]] | None:
    """The content of a group, or of a repeat that must match at least once."""
    if op is sre.SUBPATTERN:
        return list(av[3])
    if op in _REPEATS and av[0] >= 1:
        return list(av[2])
    return None


def _prefixes(items: list[tuple[Any, Any]]) -> set[str] | None:
    """Strings one of which every match of the sequence starts with (zero-width skipped)."""
    run: list[str] = []
    for op, av in items:
        if op is sre.LITERAL:
            run.append(chr(av))
            continue
        if op in _ZERO_WIDTH:
            continue
        head = "".join(run)
        inner = _inner(op, av)
        if inner is not None:
            tails = _prefixes(inner)
        elif op is sre.BRANCH:
            alts = [_prefixes(list(alt)) for alt in av[1]]
            tails = set().union(*alts) if all(alts) else None  # type: ignore[arg-type]
        else:
            tails = None
        if tails:
            return {head + t for t in tails}
        return {head} if head else None
    joined = "".join(run)
    return {joined} if joined else None


# An anchor further than this from the start of a match is not worth using.
_MAX_LEAD = 12


@dataclass(frozen=True, slots=True)
class Anchor:
    """Where matches can start: a few characters before one of ``strings`` (or ``chars``)."""

    strings: frozenset[str]
    chars: re.Pattern[str] | None
    lead: tuple[int, int]  # (min, max) characters between a match's start and the anchor
    word_start: bool = False  # the pattern opens with \b or (?<!\w): a match starts a word
    short: frozenset[str] = frozenset()  # strings too short for the scanner: always sought

    def starts(self, text: str, pos: int, end: int, strings: Iterable[str]) -> list[int]:
        """Where a match may start, given which of ``strings`` occur in the text."""
        lo, hi = self.lead
        found: set[int] = set()
        hits: list[int] = []
        for string in strings:
            at = text.find(string, pos, end)
            while at >= 0:
                hits.append(at)
                at = text.find(string, at + 1, end)
        if self.chars is not None:
            hits.extend(m.start() for m in self.chars.finditer(text, pos, end))
        for at in hits:
            found.update(range(max(pos, at - hi), at - lo + 1))
        if self.word_start:
            found = {s for s in found if s == 0 or not _is_word(text[s - 1])}
        return sorted(found)


def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _opens_a_word(op: Any, av: Any) -> bool:
    r"""``\b`` or ``(?<!\w)``: whatever follows starts after a non-word character."""
    if op is sre.AT:
        return av is sre.AT_BOUNDARY
    if op is sre.ASSERT_NOT and av[0] == -1:  # a negative lookbehind
        inner = list(av[1])
        return inner == [(sre.IN, [(sre.CATEGORY, sre.CATEGORY_WORD)])]
    return False


def anchor_of(source: str) -> Anchor | None:
    """The anchor of a pattern, when its matches start a bounded distance before one."""
    try:
        parsed = sre_parse.parse(source)
    except re.error:
        return None
    items = list(parsed)
    word_start = bool(items) and _opens_a_word(*items[0])
    lo = hi = 0
    for i, (op, av) in enumerate(items):
        if op in _ZERO_WIDTH:
            continue
        heads = _prefixes(items[i:])
        if heads and min(map(len, heads)) >= 2:
            # A string with a shorter one as its start adds nothing to the search.
            kept = frozenset(h for h in heads if not any(o != h and h.startswith(o) for o in heads))
            short = frozenset(h for h in kept if len(h) < _MIN_LITERAL)
            return Anchor(kept, None, (lo, hi), word_start, short)
        if op is sre.IN:
            chars = _char_class(av)
            if chars is not None:
                return Anchor(frozenset(), chars, (lo, hi), word_start)
        low, high = sre_parse.SubPattern(parsed.state, [(op, av)]).getwidth()
        lo, hi = lo + low, hi + high
        if hi > _MAX_LEAD:
            return None
    return None


def _char_class(av: list[tuple[Any, Any]]) -> re.Pattern[str] | None:
    parts = []
    for op, value in av:
        if op is sre.LITERAL:
            parts.append(re.escape(chr(value)))
        elif op is sre.RANGE:
            parts.append(f"{re.escape(chr(value[0]))}-{re.escape(chr(value[1]))}")
        else:
            return None  # negated classes, \s, \w: too common to anchor on
    return re.compile(f"[{''.join(parts)}]")


@dataclass(frozen=True, slots=True)
class Checked:
    """One compiled pattern, the literals that gate it and the anchor that places it."""

    pattern: re.Pattern[str]
    literals: frozenset[str] | None
    anchor: Anchor | None

    @classmethod
    def of(cls, source: str) -> Checked:
        return cls(re.compile(source), required_literals(source), anchor_of(source))

    def matches(
        self, text: str, pos: int, end: int, present: frozenset[str]
    ) -> Iterator[re.Match[str]]:
        """Matches in ``text[pos:end]``: tried only where the anchor allows, else scanned.

        ``present`` holds the registered strings that occur in ``text``.
        """
        if self.anchor is None:
            yield from self.pattern.finditer(text, pos, end)
            return
        last_end = -1
        # Short anchors are too common to scan for in every text: looked up here instead.
        strings = (self.anchor.strings & present) | self.anchor.short
        for start in self.anchor.starts(text, pos, end, strings):
            if start < last_end:
                continue  # inside the previous match, as finditer would skip it
            m = self.pattern.match(text, start, end)
            if m is not None:
                last_end = max(m.end(), start + 1)
                yield m


def _trie(words: set[str]) -> str:
    """A regex for any of ``words``, shaped as a trie: at each place it takes the longest."""
    root: dict[str, Any] = {}
    for word in words:
        node = root
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict[str, Any]) -> str:
        alts = [re.escape(ch) + build(child) for ch, child in sorted(node.items()) if ch]
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        if "" in node:  # a word ends here; a longer one may go on
            return f"(?:{body})?" if len(alts) == 1 else body + "?"
        return body

    return build(root)


class LiteralScanner:
    """Finds, in one pass over a text, which of all the lexicon's literals occur in it."""

    __slots__ = ("_closure", "_last", "_trie", "frozen", "words")

    def __init__(self) -> None:
        self.frozen = False
        self.words: set[str] = set()
        self._trie: re.Pattern[str] | None = None
        self._closure: dict[str, frozenset[str]] = {}
        self._last: tuple[str, frozenset[str]] = ("", frozenset())

    def freeze(self) -> None:
        """Build the scanner once every pattern has registered its literals."""
        self.frozen = True
        self._trie = re.compile(_trie(self.words)) if self.words else None
        # The scan reports the longest literal at each place; the shorter ones that
        # start it occur there too.
        self._closure = {w: frozenset(o for o in self.words if w.startswith(o)) for w in self.words}

    def present(self, text: str) -> frozenset[str]:
        """Every registered literal that occurs in ``text``."""
        last = self._last
        if last[0] is text:
            return last[1]
        trie = self._trie
        found: set[str] = set()
        if trie is not None:
            m = trie.search(text)
            while m is not None:
                found.add(m.group())
                m = trie.search(text, m.start() + 1)
        closure = self._closure
        present = frozenset().union(*(closure[w] for w in found)) if found else frozenset()
        self._last = (text, present)
        return present


class Patterns:
    """A list of patterns searched as one, each run only when its literals occur."""

    __slots__ = ("_always", "_by_literal", "_last", "_literals", "_scanner", "items")

    def __init__(self, sources: list[str], scanner: LiteralScanner) -> None:
        if scanner.frozen:
            raise RuntimeError("patterns must be built before their scanner is frozen")
        self.items = tuple(Checked.of(s) for s in sources)
        self._scanner = scanner
        # Which items each literal opens; items without literals are always open.
        self._by_literal: dict[str, list[int]] = {}
        always = []
        for index, item in enumerate(self.items):  # the scanner reports these for every text
            if item.literals is None:
                always.append(index)
            else:
                scanner.words.update(item.literals)
                for literal in item.literals:
                    self._by_literal.setdefault(literal, []).append(index)
            if item.anchor is not None:
                scanner.words.update(item.anchor.strings - item.anchor.short)
        self._always = frozenset(always)
        self._literals = frozenset(self._by_literal)
        # The patterns that may match the last text seen: an item is searched sentence
        # by sentence and this need not be worked out again each time. One tuple,
        # replaced whole, so threads sharing a classifier never see half an update.
        self._last: tuple[str, tuple[Checked, ...], frozenset[str]] = ("", (), frozenset())

    def __bool__(self) -> bool:
        return bool(self.items)

    def _open(self, text: str) -> tuple[tuple[Checked, ...], frozenset[str]]:
        last = self._last
        if last[0] is text:
            return last[1], last[2]
        present = self._scanner.present(text)
        opened = set(self._always)
        for literal in present & self._literals:
            opened.update(self._by_literal[literal])
        found = tuple(self.items[i] for i in sorted(opened))
        self._last = (text, found, present)
        return found, present

    def search(self, text: str, pos: int = 0, endpos: int | None = None) -> re.Match[str] | None:
        """The first hit of any pattern in ``text[pos:endpos]`` (by pattern order), or None."""
        end = len(text) if endpos is None else endpos
        items, present = self._open(text)
        for item in items:
            for found in item.matches(text, pos, end, present):
                return found
        return None

    def finditer(self, text: str) -> Iterator[re.Match[str]]:
        """Every hit of every pattern (pattern by pattern, each left to right)."""
        items, present = self._open(text)
        for item in items:
            yield from item.matches(text, 0, len(text), present)

"""Building blocks for lexicons: typed TOML access, patterns with their macros expanded.

Patterns get the same normalisation as the text (Arabic folded, Latin lowercased) and
their macros ({NAME}, {GAP}...) expanded; phrases go to a `PhraseIndex`. Every error
names the file and the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sorawatch.arabic import normalize_arabic
from sorawatch.errors import LexiconError
from sorawatch.watcher.literals import LiteralScanner, Patterns
from sorawatch.watcher.mentions import MARKER_MACROS, PhraseIndex

# Optional Arabic attached prefixes: conjunction, then preposition and/or article.
PREFIX = "(?:[وف]?(?:[بك]?ال|لل|[بلك])?)"
# Words inside one sentence: no sentence punctuation in a word.
_WORD = r"[^\s.!?؟;؛]+"
GAP = rf"(?:\s+{_WORD}){{0,6}}?\s+"
NEAR = rf"(?:\s+{_WORD}){{0,2}}?\s+"
_MACRO = re.compile(r"\{([A-Z]+)\}")
_ESCAPE = re.compile(r"\\[A-Za-z]")


@dataclass(frozen=True, slots=True)
class Labelled:
    """Patterns, each carrying a label: one alternation with a group per pattern."""

    pattern: re.Pattern[str] | None
    labels: tuple[str, ...]

    def label(self, m: re.Match[str]) -> str:
        return self.labels[int(str(m.lastgroup)[1:])]

    def find(self, text: str, start: int = 0, end: int | None = None) -> list[tuple[str, int, int]]:
        """Every match as (label, start, end), left to right."""
        if self.pattern is None:
            return []
        stop = len(text) if end is None else end
        found = self.pattern.finditer(text, start, stop)
        return [(self.label(m), m.start(), m.end()) for m in found]


def _lower_pattern(src: str) -> str:
    r"""Lowercase a regex source except the character after a backslash (`\S`, `\W`)."""
    out: list[str] = []
    escaped = False
    for ch in src:
        out.append(ch if escaped else ch.lower())
        escaped = not escaped and ch == "\\"
    return "".join(out)


def join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


class Reader:
    """Typed access to the parsed TOML; every error names the file and the key."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.macros: dict[str, str] = {"PRE": PREFIX, "GAP": GAP, "NEAR": NEAR, **MARKER_MACROS}
        self.scanner = LiteralScanner()
        self.marked: re.Pattern[str] | None = None

    def mark(self, phrases: set[str]) -> None:
        """Remember the phrases the text shows as markers, to refuse patterns spelling them."""
        words = sorted((p for p in phrases if len(p) >= 3), key=len, reverse=True)
        alternation = "|".join(re.escape(w) for w in words)
        self.marked = re.compile(rf"(?<!\w)(?:{alternation})(?!\w)") if words else None

    def marked_in(self, source: str) -> str | None:
        """A marked phrase spelled in a pattern's source, if any."""
        if self.marked is None:
            return None
        found = self.marked.search(_ESCAPE.sub(" ", source))  # "\bsora" spells "sora"
        return found.group() if found else None

    def fail(self, key: str, problem: str) -> LexiconError:
        """The error to raise for ``key``: file and key first, then what is wrong."""
        return LexiconError(f"{self.path}: {key}: {problem}")

    def table(
        self, d: dict[str, Any], key: str, where: str, *, required: bool = True
    ) -> dict[str, Any]:
        """The sub-table ``d[key]``; {} when absent and not required."""
        value = d.get(key)
        if value is None and not required:
            return {}
        if not isinstance(value, dict):
            kind = type(value).__name__
            problem = "missing table" if value is None else f"expected a table, got {kind}"
            raise self.fail(join(where, key), problem)
        return value

    def keys(self, d: dict[str, Any], allowed: set[str], where: str) -> None:
        """Refuse keys outside ``allowed``: a typo must not silently disable a rule."""
        unknown = sorted(set(d) - allowed)
        if unknown:
            known = ", ".join(sorted(allowed))
            raise self.fail(join(where, unknown[0]), f"unknown key (known: {known})")

    def strings(
        self, d: dict[str, Any], key: str, where: str, *, required: bool = True
    ) -> list[str]:
        """``d[key]`` as a list of non-empty strings; [] when absent and not required."""
        value = d.get(key)
        dotted = join(where, key)
        if value is None:
            if required:
                raise self.fail(dotted, "missing list of strings")
            return []
        if not isinstance(value, list):
            raise self.fail(dotted, f"expected a list of strings, got {type(value).__name__}")
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                raise self.fail(f"{dotted}[{i}]", f"expected a non-empty string, got {item!r}")
        return value

    def string(self, d: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
        value = d.get(key, default)
        if not isinstance(value, str) or not value:
            raise self.fail(join(where, key), f"expected a non-empty string, got {value!r}")
        return value

    def number(
        self, d: dict[str, Any], key: str, where: str, default: float, *, minimum: float
    ) -> float:
        value = d.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
            raise self.fail(join(where, key), f"expected a number >= {minimum:g}, got {value!r}")
        return value

    def phrases(
        self,
        index: PhraseIndex,
        kind: str,
        d: dict[str, Any],
        key: str,
        where: str,
        *,
        label: str | None = None,
        required: bool = False,
    ) -> int:
        """Index the phrases of ``d[key]`` as ``kind``; each is its own label by default."""
        dotted = join(where, key)
        items = self.strings(d, key, where, required=required)
        for i, item in enumerate(items):
            try:
                index.add(kind, label if label is not None else item, item)
            except ValueError:
                problem = f"phrase {item!r} has no letters or digits"
                raise self.fail(f"{dotted}[{i}]", problem) from None
        return len(items)

    def labelled_phrases(
        self, index: PhraseIndex, kind: str, d: dict[str, Any], where: str
    ) -> None:
        """Index a table of ``label = [phrases]`` as ``kind``."""
        for label in d:
            self.phrases(index, kind, d, label, where, label=label, required=True)

    def expand(self, src: str, dotted: str) -> str:
        def macro(m: re.Match[str]) -> str:
            try:
                return self.macros[m.group(1)]
            except KeyError:
                known = ", ".join("{" + k + "}" for k in sorted(self.macros))
                problem = f"unknown macro {{{m.group(1)}}} (known: {known})"
                raise self.fail(dotted, problem) from None

        return _MACRO.sub(macro, src)

    def regex_source(self, src: str, dotted: str, *, keep_case: bool = False) -> str:
        """A pattern ready to compile: macros expanded, normalised like the text.

        Refuses a pattern that spells a name, product noun or place: the text it reads
        has those replaced by markers, so it could never match.
        """
        if not keep_case and self.marked:
            spelled = self.marked_in(normalize_arabic(_lower_pattern(src)))
            if spelled:
                problem = f"spells {spelled!r}, which patterns only see as {{NAME}}, {{SUBJ}}, {{VERSION}} or {{PLACE}}"
                raise self.fail(dotted, problem)
        # Macros first: their names are upper case and the text they stand for is final.
        expanded = self.expand(src, dotted)
        expanded = normalize_arabic(expanded if keep_case else _lower_pattern(expanded))
        try:
            re.compile(expanded)
        except re.error as exc:
            raise self.fail(dotted, f"regex does not compile ({exc}): {src!r}") from None
        return expanded

    def patterns(
        self, d: dict[str, Any], key: str, where: str, *, required: bool = True
    ) -> Patterns:
        """The patterns of ``d[key]``, gated by the shared literal scanner."""
        items = self.strings(d, key, where, required=required)
        dotted = join(where, key)
        sources = [self.regex_source(s, f"{dotted}[{i}]") for i, s in enumerate(items)]
        return Patterns(sources, self.scanner)

    def union(self, d: dict[str, Any], key: str, where: str) -> re.Pattern[str]:
        """The patterns of ``d[key]`` as one regex: for short texts, where gating costs more."""
        items = self.strings(d, key, where)
        dotted = join(where, key)
        sources = [self.regex_source(s, f"{dotted}[{i}]") for i, s in enumerate(items)]
        return re.compile("|".join(f"(?:{s})" for s in sources))

    def labelled_patterns(self, d: dict[str, Any], where: str) -> Labelled:
        """A table of ``label = [patterns]`` as one alternation that tells the label."""
        pairs: list[tuple[str, str]] = []
        for label in d:
            dotted = join(where, label)
            for i, src in enumerate(self.strings(d, label, where)):
                pairs.append((label, self.regex_source(src, f"{dotted}[{i}]")))
        if not pairs:
            return Labelled(None, ())
        body = "|".join(f"(?P<g{i}>{src})" for i, (_, src) in enumerate(pairs))
        return Labelled(re.compile(body), tuple(label for label, _ in pairs))

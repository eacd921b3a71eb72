"""Building blocks for lexicons: phrases and patterns to regexes, typed TOML access.

Phrases (names, places, partners) become whole-word regexes over normalised text
with Arabic attached prefixes allowed; patterns get the same normalisation and their
macros ({NAME}, {GAP}...) expanded. Errors name the file and the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sorawatch.arabic import has_arabic, normalize_arabic, normalize_for_matching
from sorawatch.errors import LexiconError

# Optional Arabic attached prefixes: conjunction, then preposition and/or article.
PREFIX = "(?:[وف]?(?:[بك]?ال|لل|[بلك])?)"
_ARTICLE = "(?:[وف]?(?:[بك]?ال|لل))"
# Words inside one sentence: no sentence punctuation in a word.
_WORD = r"[^\s.!?؟;؛]+"
GAP = rf"(?:\s+{_WORD}){{0,6}}?\s+"
NEAR = rf"(?:\s+{_WORD}){{0,2}}?\s+"
_MACRO = re.compile(r"\{([A-Z]+)\}")
_RUN = re.compile(r"[^\W_]+|[^\w\s]+|_+")


@dataclass(frozen=True, slots=True)
class Labelled:
    """Phrases or patterns, each carrying a label; one compiled alternation."""

    pattern: re.Pattern[str] | None
    labels: tuple[str, ...]
    sources: tuple[str, ...] = ()  # one per label, without the group: for macros

    def find(self, text: str, start: int = 0, end: int | None = None) -> list[tuple[str, int, int]]:
        """Every match as (label, start, end), left to right, longest alternative first."""
        if self.pattern is None:
            return []
        stop = len(text) if end is None else end
        return [
            (self.labels[int(m.lastgroup[1:])], m.start(), m.end())  # type: ignore[index]
            for m in self.pattern.finditer(text, start, stop)
        ]


def phrase_source(phrase: str) -> str:
    """Regex source for a phrase: normalised, whole words, Arabic prefixes, loose spacing."""
    norm = normalize_for_matching(phrase).strip("#+.,;:!?")
    runs = _RUN.findall(norm)
    if not runs:
        raise ValueError("empty phrase")
    parts: list[str] = []
    for i, run in enumerate(runs):
        if run[0].isalnum():
            if i and runs[i - 1][0].isalnum():
                # Words apart in the phrase may be joined, hyphenated or quoted in text.
                parts.append("[\\s\\-_'\"]*")
            parts.append(re.escape(run))
        else:
            chars = "".join(sorted(set(run)))
            parts.append(f"\\s*[{re.escape(chars)}]+\\s*")
    core = "".join(parts)
    if has_arabic(norm[0]):
        if norm.startswith("ال") and len(norm) > 3:
            left = f"(?<!\\w){_ARTICLE}"
            core = core[2:]
        else:
            left = f"(?<!\\w){PREFIX}"
    else:
        left = "(?<![a-z0-9])"
    right = "(?!\\w)" if has_arabic(norm[-1]) else "(?![a-z0-9])"
    return left + core + right


def _lower_pattern(src: str) -> str:
    """Lowercase a regex source except the character after a backslash (`\\S`, `\\W`)."""
    out: list[str] = []
    escaped = False
    for ch in src:
        out.append(ch if escaped else ch.lower())
        escaped = not escaped and ch == "\\"
    return "".join(out)


class Reader:
    """Typed access to the parsed TOML with errors naming the file and the key."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.macros: dict[str, str] = {"PRE": PREFIX, "GAP": GAP, "NEAR": NEAR}

    def fail(self, key: str, problem: str) -> LexiconError:
        return LexiconError(f"{self.path}: {key}: {problem}")

    def table(
        self, d: dict[str, Any], key: str, where: str, *, required: bool = True
    ) -> dict[str, Any]:
        value = d.get(key)
        if value is None and not required:
            return {}
        if not isinstance(value, dict):
            problem = (
                "missing table"
                if value is None
                else f"expected a table, got {type(value).__name__}"
            )
            raise self.fail(join(where, key), problem)
        return value

    def keys(self, d: dict[str, Any], allowed: set[str], where: str) -> None:
        unknown = sorted(set(d) - allowed)
        if unknown:
            raise self.fail(
                join(where, unknown[0]), f"unknown key (known: {', '.join(sorted(allowed))})"
            )

    def strings(
        self, d: dict[str, Any], key: str, where: str, *, required: bool = True
    ) -> list[str]:
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

    def phrases(self, items: list[str], dotted: str) -> list[str]:
        sources = []
        for i, item in enumerate(items):
            try:
                sources.append(phrase_source(item))
            except ValueError:
                raise self.fail(
                    f"{dotted}[{i}]", f"phrase {item!r} has no letters or digits"
                ) from None
        return sources

    def phrase_pattern(
        self, d: dict[str, Any], key: str, where: str, *, required: bool = False
    ) -> re.Pattern[str] | None:
        items = self.strings(d, key, where, required=required)
        return alternation(self.phrases(longest_first(items), join(where, key))) if items else None

    def expand(self, src: str, dotted: str) -> str:
        def macro(m: re.Match[str]) -> str:
            try:
                return self.macros[m.group(1)]
            except KeyError:
                known = ", ".join("{" + k + "}" for k in sorted(self.macros))
                raise self.fail(
                    dotted, f"unknown macro {{{m.group(1)}}} (known: {known})"
                ) from None

        return _MACRO.sub(macro, src)

    def regex_source(self, src: str, dotted: str, *, keep_case: bool = False) -> str:
        # Macros first: their names are upper case, the text they stand for is final.
        expanded = self.expand(src, dotted)
        expanded = normalize_arabic(expanded if keep_case else _lower_pattern(expanded))
        try:
            re.compile(expanded)
        except re.error as exc:
            raise self.fail(dotted, f"regex does not compile ({exc}): {src!r}") from None
        return expanded

    def patterns(
        self, d: dict[str, Any], key: str, where: str, *, required: bool = True
    ) -> re.Pattern[str] | None:
        items = self.strings(d, key, where, required=required)
        dotted = join(where, key)
        sources = [self.regex_source(s, f"{dotted}[{i}]") for i, s in enumerate(items)]
        return alternation(sources) if sources else None

    def labelled_phrases(self, d: dict[str, Any], where: str) -> Labelled:
        pairs: list[tuple[str, str]] = []
        for label, items in d.items():
            if not isinstance(items, list):
                raise self.fail(join(where, label), "expected a list of strings")
            for src in self.phrases(self.strings(d, label, where), join(where, label)):
                pairs.append((label, src))
        return labelled(pairs)

    def labelled_patterns(self, d: dict[str, Any], where: str) -> Labelled:
        pairs: list[tuple[str, str]] = []
        for label in d:
            dotted = join(where, label)
            for i, src in enumerate(self.strings(d, label, where)):
                pairs.append((label, self.regex_source(src, f"{dotted}[{i}]")))
        return labelled(pairs, sort=False)


def join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def longest_first(items: list[str]) -> list[str]:
    return sorted(set(items), key=lambda s: (-len(normalize_for_matching(s)), s))


def alternation(sources: list[str]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{s})" for s in sources))


def labelled(pairs: list[tuple[str, str]], *, sort: bool = True) -> Labelled:
    if not pairs:
        return Labelled(None, ())
    if sort:  # the longest phrase wins where several start at one place ("sora 2 pro" > "sora 2")
        pairs = sorted(pairs, key=lambda p: -len(p[1]))
    body = "|".join(f"(?P<g{i}>{src})" for i, (_, src) in enumerate(pairs))
    return Labelled(
        re.compile(body), tuple(label for label, _ in pairs), tuple(src for _, src in pairs)
    )

"""Load, validate and compile a product lexicon (rules as data, one TOML file per product).

Every pattern is compiled here, once; the classifier only runs them. A broken file
fails at load with a `LexiconError` naming the file and the key.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sorawatch.errors import LexiconError
from sorawatch.vocabulary import STATUSES
from sorawatch.watcher.literals import Patterns
from sorawatch.watcher.mentions import PhraseIndex
from sorawatch.watcher.rules import Labelled, Reader, join

DEFAULT_PATH = Path(__file__).resolve().parent / "lexicons" / "sora.toml"

_OUTCOMES = frozenset({"keep", "drop", *STATUSES})


@dataclass(frozen=True, slots=True)
class StatusCue:
    """The cues of one status value and what negation, hedging and the future make of them."""

    status: str
    pattern: Patterns
    negated: str
    hedged: str
    reported: str
    future: str
    suppress: Patterns
    negators: re.Pattern[str] | None  # negation words for this status only


@dataclass(frozen=True, slots=True)
class Currency:
    code: str
    before: re.Pattern[str] | None
    after: re.Pattern[str] | None


@dataclass(frozen=True, slots=True)
class Lexicon:
    """A compiled lexicon; build it with `load_lexicon`.

    Phrase kinds in ``phrases``: name (labels term, strong, weak), version, subject,
    anchor, strong_context, weak_context, mask, domain, competitor, place, plan, partner.
    """

    source: str
    product_id: str
    product_name: str
    vendor: str
    phrases: PhraseIndex
    min_weak: int
    passing: Patterns
    status_order: tuple[str, ...]
    window: int
    near: int
    negation: re.Pattern[str]
    hedge: re.Pattern[str]
    reported: re.Pattern[str]
    future: re.Pattern[str]
    future_after: re.Pattern[str]
    questions: re.Pattern[str]
    background: re.Pattern[str]
    concessive: re.Pattern[str]
    modified: re.Pattern[str]  # any of the six above: most cues have none
    clause_breaks: re.Pattern[str]
    cues: tuple[StatusCue, ...]
    pricing_cues: Patterns
    price_words: Patterns
    pricing_suppress: Patterns
    max_amount: float
    money: re.Pattern[str]
    currencies: tuple[Currency, ...]
    periods: Labelled
    partnership_cues: Patterns
    creative: Patterns
    partnership_suppress: Patterns
    capture: tuple[re.Pattern[str], ...]
    not_partners: frozenset[str]
    partnership_ended: re.Pattern[str]
    genres: re.Pattern[str]  # headlines of items that report nothing as new
    retrospective: re.Pattern[str]  # a clause about the past
    lines: dict[str, str]  # version label → the version line it belongs to


def load_lexicon(path: Path | str | None = None) -> Lexicon:
    """Load and compile a lexicon; ``None`` means the shipped Sora lexicon.

    Raises `LexiconError` naming the file and the key for unreadable or invalid TOML, a
    missing section, a wrong type, an unknown key, a regex that does not compile or an
    unknown status value.
    """
    file = Path(path) if path is not None else DEFAULT_PATH
    name = str(file)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LexiconError(f"{name}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LexiconError(f"{name}: cannot read ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise LexiconError(f"{name}: not valid TOML ({exc})") from None
    return _build(Reader(name), data)


_TOP = {"version", "product", "names", "context", "exclusions", "competitors", "status"}
_TOP |= {"places", "pricing", "partnership", "claims"}
_MODIFIERS: tuple[str, ...] = ("negation", "hedge", "reported", "future", "future_after")
_MODIFIERS += ("questions", "background", "concessive", "clause_breaks")


def _phrases(r: Reader, data: dict[str, Any]) -> PhraseIndex:
    """Every phrase list of the lexicon, in one index."""
    index = PhraseIndex()
    names = r.table(data, "names", "")
    r.keys(names, {"terms", "strong", "weak", "subjects", "versions"}, "names")
    r.phrases(index, "name", names, "terms", "names", label="term", required=True)
    r.phrases(index, "name", names, "strong", "names", label="strong")
    r.phrases(index, "name", names, "weak", "names", label="weak")
    r.phrases(index, "subject", names, "subjects", "names")
    r.labelled_phrases(
        index, "version", r.table(names, "versions", "names", required=False), "names.versions"
    )
    context = r.table(data, "context", "")
    r.keys(context, {"anchors", "strong", "weak", "min_weak"}, "context")
    r.phrases(index, "anchor", context, "anchors", "context", required=True)
    r.phrases(index, "strong_context", context, "strong", "context")
    r.phrases(index, "weak_context", context, "weak", "context")
    exclusions = r.table(data, "exclusions", "", required=False)
    r.keys(exclusions, {"masks", "domains", "passing"}, "exclusions")
    r.phrases(index, "mask", exclusions, "masks", "exclusions")
    r.phrases(index, "domain", exclusions, "domains", "exclusions")
    competitors = r.table(data, "competitors", "", required=False)
    r.keys(competitors, {"terms"}, "competitors")
    r.phrases(index, "competitor", competitors, "terms", "competitors")
    r.labelled_phrases(index, "place", r.table(data, "places", "", required=False), "places")
    return index


def _build(r: Reader, data: dict[str, Any]) -> Lexicon:
    r.keys(data, _TOP, "")
    if data.get("version", 1) != 1:
        raise r.fail("version", f"unsupported lexicon version {data['version']!r} (known: 1)")
    product = r.table(data, "product", "")
    r.keys(product, {"id", "name", "vendor"}, "product")
    phrases = _phrases(r, data)
    r.mark(phrases.marked)
    context = r.table(data, "context", "")
    exclusions = r.table(data, "exclusions", "", required=False)

    status = r.table(data, "status", "")
    r.keys(status, {"order", "window", "near", "modifiers", "cues"}, "status")
    order = r.strings(status, "order", "status")
    for i, value in enumerate(order):
        if value not in STATUSES:
            known = ", ".join(STATUSES)
            raise r.fail(f"status.order[{i}]", f"unknown status {value!r} (known: {known})")
    modifiers = r.table(status, "modifiers", "status")
    r.keys(modifiers, set(_MODIFIERS), "status.modifiers")
    # Modifiers read a few words around a cue: one plain regex each is cheapest there.
    mods = {m: r.union(modifiers, m, "status.modifiers") for m in _MODIFIERS}
    cues = _cues(r, r.table(status, "cues", "status"), order)

    pricing = r.table(data, "pricing", "")
    allowed = {"cues", "price_words", "suppress", "max_amount", "currencies", "periods", "plans"}
    r.keys(pricing, allowed, "pricing")
    r.labelled_phrases(
        phrases, "plan", r.table(pricing, "plans", "pricing", required=False), "pricing.plans"
    )
    currencies = _currencies(r, r.table(pricing, "currencies", "pricing"))
    partnership = r.table(data, "partnership", "")
    allowed = {"cues", "creative", "suppress", "capture", "not_partners", "partners", "ended"}
    r.keys(partnership, allowed, "partnership")
    partners = r.table(partnership, "partners", "partnership", required=False)
    r.labelled_phrases(phrases, "partner", partners, "partnership.partners")
    captures = []
    for i, src in enumerate(r.strings(partnership, "capture", "partnership", required=False)):
        captured = re.compile(r.regex_source(src, f"partnership.capture[{i}]", keep_case=True))
        if "name" not in captured.groupindex:
            raise r.fail(
                f"partnership.capture[{i}]", "a capture pattern needs a group (?P<name>...)"
            )
        captures.append(captured)
    not_partners = r.strings(partnership, "not_partners", "partnership", required=False)
    claims = r.table(data, "claims", "")
    r.keys(claims, {"genres", "retrospective", "lines"}, "claims")
    lines = r.table(claims, "lines", "claims", required=False)
    for label, line in lines.items():
        if not isinstance(line, str) or not line:
            raise r.fail(f"claims.lines.{label}", "expected the name of a version line")

    late = {  # every Patterns is built before the scanner freezes
        "passing": r.patterns(exclusions, "passing", "exclusions", required=False),
        "pricing_cues": r.patterns(pricing, "cues", "pricing"),
        "price_words": r.patterns(pricing, "price_words", "pricing"),
        "pricing_suppress": r.patterns(pricing, "suppress", "pricing", required=False),
        "partnership_cues": r.patterns(partnership, "cues", "partnership"),
        "creative": r.patterns(partnership, "creative", "partnership"),
        "partnership_suppress": r.patterns(partnership, "suppress", "partnership", required=False),
    }
    r.scanner.freeze()
    return Lexicon(
        **late,
        source=r.path,
        product_id=r.string(product, "id", "product"),
        product_name=r.string(product, "name", "product"),
        vendor=r.string(product, "vendor", "product", default="-"),
        phrases=phrases,
        min_weak=int(r.number(context, "min_weak", "context", 2, minimum=1)),
        status_order=tuple(order),
        window=int(r.number(status, "window", "status", 6, minimum=1)),
        near=int(r.number(status, "near", "status", 3, minimum=1)),
        negation=mods["negation"],
        hedge=mods["hedge"],
        reported=mods["reported"],
        future=mods["future"],
        future_after=mods["future_after"],
        questions=mods["questions"],
        background=mods["background"],
        concessive=mods["concessive"],
        modified=re.compile(
            "|".join(
                f"(?:{mods[m].pattern})"
                for m in ("negation", "hedge", "reported", "future", "background", "concessive")
            )
        ),
        clause_breaks=mods["clause_breaks"],
        cues=cues,
        max_amount=r.number(pricing, "max_amount", "pricing", 100000, minimum=0),
        money=_money(currencies),
        currencies=tuple(c for c, _, _ in currencies),
        periods=r.labelled_patterns(r.table(pricing, "periods", "pricing"), "pricing.periods"),
        capture=tuple(captures),
        not_partners=frozenset(s.lower() for s in not_partners),
        partnership_ended=r.union(partnership, "ended", "partnership"),
        genres=r.union(claims, "genres", "claims"),
        retrospective=r.union(claims, "retrospective", "claims"),
        lines={str(k): str(v) for k, v in lines.items()},
    )


def _cues(r: Reader, table: dict[str, Any], order: list[str]) -> tuple[StatusCue, ...]:
    cues = []
    for status, spec in table.items():
        where = join("status.cues", status)
        if status not in STATUSES:
            raise r.fail(where, f"unknown status (known: {', '.join(STATUSES)})")
        if status not in order:
            raise r.fail(where, "status has cues but is missing from status.order")
        if not isinstance(spec, dict):
            raise r.fail(where, f"expected a table, got {type(spec).__name__}")
        allowed = {"patterns", "negated", "hedged", "reported", "future", "suppress", "negators"}
        r.keys(spec, allowed, where)
        outcomes = {}
        defaults = (
            ("negated", "drop"),
            ("hedged", "keep"),
            ("reported", "keep"),
            ("future", "keep"),
        )
        for key, default in defaults:
            value = r.string(spec, key, where, default=default)
            if value not in _OUTCOMES:
                raise r.fail(
                    join(where, key),
                    f"unknown outcome {value!r} (known: keep, drop, {', '.join(STATUSES)})",
                )
            outcomes[key] = value
        pattern = r.patterns(spec, "patterns", where)
        suppress = r.patterns(spec, "suppress", where, required=False)
        negators = r.union(spec, "negators", where) if "negators" in spec else None
        cues.append(StatusCue(status, pattern, suppress=suppress, negators=negators, **outcomes))
    return tuple(cues)


def _currencies(r: Reader, table: dict[str, Any]) -> list[tuple[Currency, list[str], list[str]]]:
    out = []
    for code, spec in table.items():
        where = join("pricing.currencies", code)
        if not re.fullmatch(r"[A-Z]{3}", code):
            raise r.fail(where, "a currency is named by its ISO 4217 code (USD, EUR)")
        if not isinstance(spec, dict):
            raise r.fail(where, f"expected a table, got {type(spec).__name__}")
        r.keys(spec, {"before", "after"}, where)
        before = [
            r.regex_source(s, f"{where}.before[{i}]")
            for i, s in enumerate(r.strings(spec, "before", where, required=False))
        ]
        after = [
            r.regex_source(s, f"{where}.after[{i}]")
            for i, s in enumerate(r.strings(spec, "after", where, required=False))
        ]
        if not before and not after:
            raise r.fail(where, "needs `before` or `after` patterns")
        currency = Currency(
            code,
            re.compile("|".join(before)) if before else None,
            re.compile("|".join(after)) if after else None,
        )
        out.append((currency, before, after))
    if not out:
        raise r.fail("pricing.currencies", "at least one currency is needed")
    return out


_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_MULT = r"(?:k|m|bn|million|billion|thousand)(?![a-z])|(?:الف|مليون|مليار|ملايين|مليارات)(?!\w)"


def _money(currencies: list[tuple[Currency, list[str], list[str]]]) -> re.Pattern[str]:
    """One pattern for an amount: a symbol before it ($20) or a word after it (20 دولارا)."""
    before = "|".join(
        f"(?:{s})" for _, b, _ in currencies for s in sorted(b, key=len, reverse=True)
    )
    after = "|".join(f"(?:{s})" for _, _, a in currencies for s in sorted(a, key=len, reverse=True))
    alternatives = []
    if before:
        alternatives.append(
            rf"(?<![a-z0-9])(?P<cb>{before})\s?(?P<n1>{_NUM})"
            rf"(?:\s?(?:-|to|الى|و)\s?(?:{before})?\s?(?P<n1b>{_NUM}))?(?:\s?(?P<m1>{_MULT}))?"
        )
    if after:
        alternatives.append(
            rf"(?<![\d.,])(?P<n2>{_NUM})(?:\s?(?:-|to|الى)\s?(?P<n2b>{_NUM}))?"
            rf"(?:\s?(?P<m2>{_MULT}))?\s?(?P<ca>{after})(?![a-z\u0600-\u06ff])"
        )
    return re.compile("|".join(alternatives))

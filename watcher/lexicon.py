"""Load, validate and compile a product lexicon (rules as data, one TOML file per product).

Every regular expression is compiled here, once; the classifier only runs them. A
broken file fails at load with a `LexiconError` naming the file and the key.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sorawatch.errors import LexiconError
from watcher.rules import Labelled, Reader, join, labelled

DEFAULT_PATH = Path(__file__).resolve().parent / "lexicons" / "sora.toml"

STATUSES: tuple[str, ...] = (
    "announced",
    "research_preview",
    "limited_access",
    "delayed",
    "released",
    "new_version",
    "expanded",
    "paused",
    "discontinued",
)
_OUTCOMES = frozenset({"keep", "drop", *STATUSES})


@dataclass(frozen=True, slots=True)
class StatusCue:
    """The cues of one status value and what negation, hedging and the future make of them."""

    status: str
    pattern: re.Pattern[str]
    negated: str
    hedged: str
    future: str
    suppress: re.Pattern[str] | None


@dataclass(frozen=True, slots=True)
class Currency:
    code: str
    before: re.Pattern[str] | None
    after: re.Pattern[str] | None


@dataclass(frozen=True, slots=True)
class Lexicon:
    """A compiled lexicon; build it with `load_lexicon`."""

    source: str
    product_id: str
    product_name: str
    vendor: str
    names: Labelled  # labels: "term", "strong", "weak"
    versions: Labelled
    anchors: re.Pattern[str] | None
    strong_context: re.Pattern[str] | None
    weak_context: re.Pattern[str] | None
    min_weak: int
    masks: re.Pattern[str] | None
    domains: re.Pattern[str] | None
    passing: re.Pattern[str] | None
    competitors: re.Pattern[str] | None
    status_order: tuple[str, ...]
    window: int
    near: int
    negation: re.Pattern[str]
    hedge: re.Pattern[str]
    future: re.Pattern[str]
    future_after: re.Pattern[str]
    questions: re.Pattern[str]
    background: re.Pattern[str]
    concessive: re.Pattern[str]
    clause_breaks: re.Pattern[str]
    cues: tuple[StatusCue, ...]
    places: Labelled
    pricing_cues: re.Pattern[str]
    price_words: re.Pattern[str]
    pricing_suppress: re.Pattern[str] | None
    max_amount: float
    money: re.Pattern[str]
    currencies: tuple[Currency, ...]
    periods: Labelled
    plans: Labelled
    partnership_cues: re.Pattern[str]
    creative: re.Pattern[str]
    partnership_suppress: re.Pattern[str] | None
    capture: tuple[re.Pattern[str], ...]
    not_partners: frozenset[str]
    partners: Labelled


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
_TOP |= {"places", "pricing", "partnership"}


def _build(r: Reader, data: dict[str, Any]) -> Lexicon:
    r.keys(data, _TOP, "")
    if data.get("version", 1) != 1:
        raise r.fail("version", f"unsupported lexicon version {data['version']!r} (known: 1)")
    product = r.table(data, "product", "")
    r.keys(product, {"id", "name", "vendor"}, "product")

    names = r.table(data, "names", "")
    r.keys(names, {"terms", "strong", "weak", "subjects", "versions"}, "names")
    tiers = {
        tier: r.strings(names, tier, "names", required=tier == "terms")
        for tier in ("terms", "strong", "weak")
    }
    name_pairs = [
        (tier[:-1] if tier == "terms" else tier, src)
        for tier, items in tiers.items()
        for src in r.phrases(items, f"names.{tier}")
    ]
    name_sources = [src for _, src in sorted(name_pairs, key=lambda p: -len(p[1]))]
    subjects = r.phrases(r.strings(names, "subjects", "names", required=False), "names.subjects")
    versions = r.labelled_phrases(
        r.table(names, "versions", "names", required=False), "names.versions"
    )
    places = r.labelled_phrases(r.table(data, "places", "", required=False), "places")
    r.macros["NAME"] = "(?:" + "|".join(name_sources) + ")"
    r.macros["SUBJ"] = (
        "(?:" + "|".join(name_sources + sorted(subjects, key=len, reverse=True)) + ")"
    )
    r.macros["VERSION"] = _source_or_never(versions)
    r.macros["PLACE"] = _source_or_never(places)

    context = r.table(data, "context", "")
    r.keys(context, {"anchors", "strong", "weak", "min_weak"}, "context")
    exclusions = r.table(data, "exclusions", "", required=False)
    r.keys(exclusions, {"masks", "domains", "passing"}, "exclusions")
    competitors = r.table(data, "competitors", "", required=False)
    r.keys(competitors, {"terms"}, "competitors")

    status = r.table(data, "status", "")
    r.keys(status, {"order", "window", "near", "modifiers", "cues"}, "status")
    order = r.strings(status, "order", "status")
    for i, value in enumerate(order):
        if value not in STATUSES:
            raise r.fail(
                f"status.order[{i}]", f"unknown status {value!r} (known: {', '.join(STATUSES)})"
            )
    modifiers = r.table(status, "modifiers", "status")
    mods = ("negation", "hedge", "future", "future_after", "questions", "background")
    mods += ("concessive", "clause_breaks")
    r.keys(modifiers, set(mods), "status.modifiers")
    compiled = {m: r.patterns(modifiers, m, "status.modifiers") for m in mods}
    cues = _cues(r, r.table(status, "cues", "status"), order)

    pricing = r.table(data, "pricing", "")
    r.keys(
        pricing,
        {"cues", "price_words", "suppress", "max_amount", "currencies", "periods", "plans"},
        "pricing",
    )
    currencies = _currencies(r, r.table(pricing, "currencies", "pricing"))
    partnership = r.table(data, "partnership", "")
    allowed = {"cues", "creative", "suppress", "capture", "not_partners", "partners"}
    r.keys(partnership, allowed, "partnership")
    captures = []
    for i, src in enumerate(r.strings(partnership, "capture", "partnership", required=False)):
        captured = re.compile(r.regex_source(src, f"partnership.capture[{i}]", keep_case=True))
        if "name" not in captured.groupindex:
            raise r.fail(
                f"partnership.capture[{i}]", "a capture pattern needs a group (?P<name>...)"
            )
        captures.append(captured)

    return Lexicon(
        source=r.path,
        product_id=r.string(product, "id", "product"),
        product_name=r.string(product, "name", "product"),
        vendor=r.string(product, "vendor", "product", default="-"),
        names=labelled(name_pairs),
        versions=versions,
        anchors=r.phrase_pattern(context, "anchors", "context", required=True),
        strong_context=r.phrase_pattern(context, "strong", "context"),
        weak_context=r.phrase_pattern(context, "weak", "context"),
        min_weak=int(r.number(context, "min_weak", "context", 2, minimum=1)),
        masks=r.phrase_pattern(exclusions, "masks", "exclusions"),
        domains=r.phrase_pattern(exclusions, "domains", "exclusions"),
        passing=r.patterns(exclusions, "passing", "exclusions", required=False),
        competitors=r.phrase_pattern(competitors, "terms", "competitors"),
        status_order=tuple(order),
        window=int(r.number(status, "window", "status", 6, minimum=1)),
        near=int(r.number(status, "near", "status", 3, minimum=1)),
        negation=_required(compiled["negation"]),
        hedge=_required(compiled["hedge"]),
        future=_required(compiled["future"]),
        future_after=_required(compiled["future_after"]),
        questions=_required(compiled["questions"]),
        background=_required(compiled["background"]),
        concessive=_required(compiled["concessive"]),
        clause_breaks=_required(compiled["clause_breaks"]),
        cues=cues,
        places=places,
        pricing_cues=_required(r.patterns(pricing, "cues", "pricing")),
        price_words=_required(r.patterns(pricing, "price_words", "pricing")),
        pricing_suppress=r.patterns(pricing, "suppress", "pricing", required=False),
        max_amount=r.number(pricing, "max_amount", "pricing", 100000, minimum=0),
        money=_money(currencies),
        currencies=tuple(c for c, _, _ in currencies),
        periods=r.labelled_patterns(r.table(pricing, "periods", "pricing"), "pricing.periods"),
        plans=r.labelled_phrases(
            r.table(pricing, "plans", "pricing", required=False), "pricing.plans"
        ),
        partnership_cues=_required(r.patterns(partnership, "cues", "partnership")),
        creative=_required(r.patterns(partnership, "creative", "partnership")),
        partnership_suppress=r.patterns(partnership, "suppress", "partnership", required=False),
        capture=tuple(captures),
        not_partners=frozenset(
            s.lower() for s in r.strings(partnership, "not_partners", "partnership", required=False)
        ),
        partners=r.labelled_phrases(
            r.table(partnership, "partners", "partnership", required=False), "partnership.partners"
        ),
    )


def _required(pattern: re.Pattern[str] | None) -> re.Pattern[str]:
    assert pattern is not None  # Reader.patterns(required=True) never returns None
    return pattern


def _source_or_never(items: Labelled) -> str:
    # A lexicon without versions or places still compiles; the macro then never matches.
    return "(?:" + "|".join(items.sources) + ")" if items.sources else "(?!x)x"


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
        r.keys(spec, {"patterns", "negated", "hedged", "future", "suppress"}, where)
        outcomes = {}
        for key, default in (("negated", "drop"), ("hedged", "keep"), ("future", "keep")):
            value = r.string(spec, key, where, default=default)
            if value not in _OUTCOMES:
                raise r.fail(
                    join(where, key),
                    f"unknown outcome {value!r} (known: keep, drop, {', '.join(STATUSES)})",
                )
            outcomes[key] = value
        pattern = _required(r.patterns(spec, "patterns", where))
        suppress = r.patterns(spec, "suppress", where, required=False)
        cues.append(StatusCue(status, pattern, suppress=suppress, **outcomes))
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

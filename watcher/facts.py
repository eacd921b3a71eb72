"""What a relevant item asserts: status (with version and where), prices, partners.

Each extractor runs the lexicon's compiled patterns over the prepared text and judges
every cue in its clause: negated, hedged, promised, background or concessive. The
rules themselves live in the lexicon; this module only knows how to apply them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sorawatch.arabic import normalize_arabic, normalize_for_matching
from watcher.lexicon import Lexicon, StatusCue

# A sentence ends at these when a space or the end follows ("$0.10" stays whole).
_SENTENCE_END = re.compile(r"[.!?؟;؛]+(?=\s|$)")
_TITLE_JOIN = " . "
_NAME_SPLIT = re.compile(r"\s+(?:and|&)\s+|\s*[,،]\s*")
_NAME_TRIM = re.compile(r"^(?:the|a|an)\s+|(?:\s+(?:and|of|&))+$|['’]s$", re.IGNORECASE)


@dataclass(slots=True)
class Prepared:
    """An item's text normalised once, with its sentences; shared by all extractors."""

    text: str
    title_end: int
    kept_summary: str
    sentences: list[tuple[int, int]]
    _names: dict[int, bool] = field(default_factory=dict)

    @classmethod
    def of(cls, title: str, summary: str) -> Prepared:
        title_n = normalize_for_matching(title)
        summary_n = normalize_for_matching(summary)
        text = f"{title_n}{_TITLE_JOIN}{summary_n}" if title_n else summary_n
        title_end = len(title_n)
        kept = " ".join(normalize_arabic(summary).split())
        return cls(text, title_end, kept, _sentences(text))

    def sentence_at(self, pos: int) -> tuple[int, int]:
        for start, end in self.sentences:
            if start <= pos < end:
                return start, end
        return self.sentences[-1] if self.sentences else (0, len(self.text))


def _sentences(text: str) -> list[tuple[int, int]]:
    spans = []
    start = 0
    for m in _SENTENCE_END.finditer(text):
        spans.append((start, m.end()))
        start = m.end()
    if start < len(text):
        spans.append((start, len(text)))
    return spans


def _off_topic(lex: Lexicon, prep: Prepared, span: tuple[int, int]) -> bool:
    """True for a sentence about a competitor that does not name the product."""
    key = span[0]
    cached = prep._names.get(key)
    if cached is None:
        text = prep.text
        competitor = lex.competitors is not None and lex.competitors.search(text, *span) is not None
        cached = (
            competitor
            and lex.names.pattern is not None
            and not lex.names.pattern.search(text, *span)
        )
        prep._names[key] = cached
    return cached


def _clause_start(lex: Lexicon, text: str, pos: int) -> int:
    """Where the clause holding ``pos`` starts (after the last clause break before it)."""
    lo = max(0, pos - 200)
    last = None
    for last in lex.clause_breaks.finditer(text, lo, pos):  # noqa: B007 - the last one is wanted
        pass
    return last.end() if last is not None else lo


def _clause_words(lex: Lexicon, text: str, pos: int) -> list[str]:
    """The words of the clause before ``pos``."""
    return text[_clause_start(lex, text, pos) : pos].split()


# ---------------------------------------------------------------------- status --


def _judge(lex: Lexicon, cue: StatusCue, prep: Prepared, start: int, end: int) -> str | None:
    """The status a cue supports once its clause is read, or None."""
    text = prep.text
    words = _clause_words(lex, text, start)
    span = text[start:end]
    if lex.background.search(" ".join(words[-lex.near :]) + " " + span):
        return None
    context = " ".join(words[-lex.window :]) + " " + span
    if lex.concessive.search(context):
        return None
    outcome = "keep"
    if cue.negated != "keep" and lex.negation.search(context):
        outcome = cue.negated
    elif lex.hedge.search(context) or _asks(lex, prep, start):
        outcome = cue.hedged
    elif lex.future.search(context) or lex.future_after.search(
        text, end, _clause_end(lex, text, end)
    ):
        outcome = cue.future
    if outcome == "drop":
        return None
    return cue.status if outcome == "keep" else outcome


def _asks(lex: Lexicon, prep: Prepared, pos: int) -> bool:
    start, end = prep.sentence_at(pos)
    return lex.questions.search(prep.text[start:end].strip(" .")) is not None


def extract_status(lex: Lexicon, prep: Prepared) -> dict[str, Any]:
    """``{"status": ..., "version": ..., "where": [...]}`` with only the keys that apply.

    The title speaks first: when it supports a status other than a bare announcement,
    the summary's background (an earlier launch, a named country) does not outrank it.
    """
    text = prep.text
    evidence: dict[str, list[tuple[int, int]]] = {}
    in_title: set[str] = set()
    for cue in lex.cues:
        for m in cue.pattern.finditer(text):
            sentence = prep.sentence_at(m.start())
            if cue.suppress is not None and cue.suppress.search(text, *sentence):
                continue
            if _off_topic(lex, prep, sentence):
                continue
            status = _judge(lex, cue, prep, m.start(), m.end())
            if status is not None:
                evidence.setdefault(status, []).append(sentence)
                if m.start() < prep.title_end:
                    in_title.add(status)
    pool = in_title if in_title - {"announced"} else evidence
    chosen = next((s for s in lex.status_order if s in pool), None)
    if chosen is None:
        return {}
    facts: dict[str, Any] = {"status": chosen}
    versions = lex.versions.find(text)
    if versions:
        facts["version"] = versions[0][0]
    if chosen == "expanded":
        where: list[str] = []
        for sentence in dict.fromkeys(evidence[chosen]):
            for label, _, _ in lex.places.find(text, *sentence):
                if label not in where:
                    where.append(label)
        if where:
            facts["where"] = where
    return facts


# --------------------------------------------------------------------- pricing --


def _number(raw: str) -> float:
    return float(raw.replace(",", ""))


def _clean(amount: float) -> int | float:
    return int(amount) if amount.is_integer() else round(amount, 4)


def _currency(lex: Lexicon, m: re.Match[str]) -> str | None:
    before, after = m.groupdict().get("cb"), m.groupdict().get("ca")
    for currency in lex.currencies:
        if before and currency.before is not None and currency.before.fullmatch(before):
            return currency.code
        if after and currency.after is not None and currency.after.fullmatch(after):
            return currency.code
    return None


def _period(lex: Lexicon, text: str, end: int, clause_start: int, start: int) -> str | None:
    pos = end
    while pos < len(text) and text[pos] in " (,":
        pos += 1
    found = lex.periods.pattern.match(text, pos) if lex.periods.pattern else None
    if found is not None:
        return lex.periods.labels[int(found.lastgroup[1:])]  # type: ignore[index]
    # "a monthly fee of $20": the period word just before the amount, in its clause.
    before = lex.periods.find(text, max(clause_start, start - 30), start)
    return before[-1][0] if before else None


def _plan(lex: Lexicon, text: str, clause: tuple[int, int], start: int, end: int) -> str | None:
    """The plan named nearest the amount within its clause, before it on a tie."""
    before = lex.plans.find(text, max(clause[0], start - 80), start)
    after = lex.plans.find(text, end, min(clause[1], end + 50))
    if before and (not after or start - before[-1][2] <= after[0][1] - end):
        return before[-1][0]
    return after[0][0] if after else None


def _clause_end(lex: Lexicon, text: str, end: int) -> int:
    found = lex.clause_breaks.search(text, end, min(len(text), end + 160))
    return found.start() if found else min(len(text), end + 160)


def extract_pricing(lex: Lexicon, prep: Prepared) -> tuple[bool, list[dict[str, Any]]]:
    """Whether the item is about pricing, and the prices it states."""
    text = prep.text
    entries: list[dict[str, Any]] = []
    if any(ch.isdigit() for ch in text):
        for m in lex.money.finditer(text):
            entries.extend(_price(lex, prep, m))
    topic = bool(entries)
    if not topic:
        for m in lex.pricing_cues.finditer(text):
            if not _off_topic(lex, prep, prep.sentence_at(m.start())):
                topic = True
                break
    unique = list({tuple(e.values()): e for e in entries}.values())
    return topic, unique


def _price(lex: Lexicon, prep: Prepared, m: re.Match[str]) -> list[dict[str, Any]]:
    text = prep.text
    groups = m.groupdict()
    if groups.get("m1") or groups.get("m2"):
        return []  # thousands, millions: a deal or a loss, not a price
    sentence = prep.sentence_at(m.start())
    if _off_topic(lex, prep, sentence):
        return []
    clause = (
        max(sentence[0], _clause_start(lex, text, m.start())),
        _clause_end(lex, text, m.end()),
    )
    if lex.pricing_suppress is not None and lex.pricing_suppress.search(text, *clause):
        return []
    code = _currency(lex, m)
    raw = [groups.get("n1") or groups.get("n2"), groups.get("n1b") or groups.get("n2b")]
    amounts = [_number(n) for n in raw if n]
    if code is None or not amounts or max(amounts) >= lex.max_amount:
        return []
    plan = _plan(lex, text, clause, m.start(), m.end())
    period = _period(lex, text, m.end(), clause[0], m.start())
    if plan is None and period is None:
        priced = lex.price_words.search(text, max(clause[0], m.start() - 40), m.start())
        if priced is None and lex.pricing_cues.search(text, *sentence) is None:
            return []
    return [
        {"plan": plan, "amount": _clean(amount), "currency": code, "period": period}
        for amount in amounts
    ]


# ----------------------------------------------------------------- partnership --


def extract_partners(lex: Lexicon, prep: Prepared) -> tuple[bool, list[str]]:
    """Whether the item is about a partnership, and the partners' Latin names."""
    text = prep.text
    topic = False
    partners: list[str] = []
    for sentence in prep.sentences:
        if lex.partnership_cues.search(text, *sentence) is None:
            continue
        if lex.partnership_suppress is not None and lex.partnership_suppress.search(
            text, *sentence
        ):
            continue
        if _off_topic(lex, prep, sentence):
            continue
        named = [label for label, _, _ in lex.partners.find(text, *sentence)]
        if named or lex.creative.search(text, *sentence):
            topic = True
            partners.extend(named)
    if not topic:
        return False, []
    for pattern in lex.capture:
        for m in pattern.finditer(prep.kept_summary):
            partners.extend(_captured(lex, m.group("name")))
    return True, list(dict.fromkeys(partners))


def _captured(lex: Lexicon, raw: str) -> list[str]:
    names = []
    for part in _NAME_SPLIT.split(raw.strip(" .\"'")):
        name = _NAME_TRIM.sub("", part.strip()).strip(" .\"'")
        if len(name) < 2 or name.lower() in lex.not_partners:
            continue
        norm = normalize_for_matching(name)
        curated = lex.partners.find(norm)
        if curated:  # "Walt Disney Studios" is Disney, "Cannes Lions Festival" Cannes Lions
            names.extend(label for label, _, _ in curated)
            continue
        if lex.competitors is not None and lex.competitors.search(norm):
            continue
        if lex.names.pattern is not None and lex.names.pattern.search(norm):
            continue
        names.append(name)
    return names

"""What a relevant item asserts: status (with version and where), prices, partners.

Each extractor runs the lexicon's compiled patterns over the prepared text and judges
every cue in its clause: negated, hedged, promised, background or concessive. The
rules themselves live in the lexicon; this module only knows how to apply them.
"""

from __future__ import annotations

import re
from typing import Any

from sorawatch.arabic import normalize_for_matching
from sorawatch.watcher.lexicon import Lexicon, StatusCue
from sorawatch.watcher.mentions import Prepared

_DIGIT = re.compile(r"\d")
_NAME_SPLIT = re.compile(r"\s+(?:and|&)\s+|\s*[,،]\s*")
_NAME_TRIM = re.compile(r"^(?:the|a|an)\s+|(?:\s+(?:and|of|&))+$|['’]s$", re.IGNORECASE)


def _off_topic(prep: Prepared, span: tuple[int, int]) -> bool:
    """True for a sentence about a competitor that does not name the product."""
    cached = prep.off_topic.get(span[0])
    if cached is None:
        kinds = {m.kind for m in prep.mentions if span[0] <= m.start < span[1]}
        cached = "competitor" in kinds and not kinds & {"name", "version"}
        prep.off_topic[span[0]] = cached
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
    """The status a cue claims once its clause is read, or None: a clause that looks
    back, or a rumour (hedged or someone else's report), claims nothing."""
    text = prep.text
    clause = (_clause_start(lex, text, start), _clause_end(lex, text, end))
    if lex.retrospective.search(prep.plain, *clause):
        return None
    words = _clause_words(lex, text, start)
    span = text[start:end]
    context = " ".join(words[-lex.window :]) + " " + span
    outcome = "keep"
    # Most cues stand bare: one search tells, before the modifiers are told apart.
    if lex.modified.search(context) or (cue.negators and cue.negators.search(context)):
        if lex.background.search(" ".join(words[-lex.near :]) + " " + span):
            return None
        if lex.concessive.search(context):
            return None
        if cue.negated != "keep" and (
            lex.negation.search(context) or (cue.negators and cue.negators.search(context))
        ):
            outcome = cue.negated
        elif lex.hedge.search(context) or lex.reported.search(context):
            return None
        elif lex.future.search(context):
            outcome = cue.future
    if outcome == "keep":
        if _asks(lex, prep, start):
            return None
        elif lex.future_after.search(text, end, _clause_end(lex, text, end)):
            outcome = cue.future
    if outcome == "drop":
        return None
    return cue.status if outcome == "keep" else outcome


_ACCESS = ("research_preview", "limited_access")


def _anywhere(lex: Lexicon, prep: Prepared, status: str) -> bool:
    """Whether any sentence of the item supports ``status`` (background aside)."""
    for cue in lex.cues:
        if cue.status != status:
            continue
        for m in cue.pattern.finditer(prep.text):
            sentence = prep.sentence_at(m.start())
            if cue.suppress and cue.suppress.search(prep.text, *sentence):
                continue
            if _judge(lex, cue, prep, m.start(), m.end()) == status:
                return True
    return False


def _asks(lex: Lexicon, prep: Prepared, pos: int) -> bool:
    start, end = prep.sentence_at(pos)
    return lex.questions.search(prep.text[start:end].strip(" .")) is not None


def extract_status(lex: Lexicon, prep: Prepared, zone: int | None = None) -> dict[str, Any]:
    """``{"status": ..., "version": ..., "where": [...]}`` with only the keys that apply.

    Only cues before ``zone`` (the headline and the lead's first sentence) claim. The
    title speaks first: when it supports a status other than a bare announcement, the
    lead's other statuses do not outrank it. A new version is released, or in limited
    access when the claim says so; its line is the version's (``[claims.lines]``).
    """
    text = prep.text
    limit = len(text) if zone is None else zone
    evidence: dict[str, list[tuple[int, int]]] = {}
    in_title: set[str] = set()
    for cue in lex.cues:
        for m in cue.pattern.finditer(text):
            if m.start() >= limit:
                continue  # matches come pattern by pattern, not in text order
            sentence = prep.sentence_at(m.start())
            # A cue may run past a sentence break ("Jr. videos"): its suppressors may too.
            if cue.suppress and cue.suppress.search(text, sentence[0], max(sentence[1], m.end())):
                continue
            if _off_topic(prep, sentence):
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
    # How a launch or an unveiling opens may be told further down ("invite-based", "red
    # teamers are assessing it"): the claim is the launch, its access is the item's.
    if chosen == "new_version":
        limited = "limited_access" in evidence or _anywhere(lex, prep, "limited_access")
        chosen = "limited_access" if limited else "released"
        evidence.setdefault(chosen, evidence["new_version"])
    elif chosen == "announced":
        opened = next((s for s in _ACCESS if _anywhere(lex, prep, s)), None)
        if opened is not None:
            evidence.setdefault(opened, evidence["announced"])
            chosen = opened
    facts: dict[str, Any] = {"status": chosen}
    versions = [v for v in prep.of_kind("version") if v.start < limit]
    if versions:
        facts["version"] = lex.lines.get(versions[0].label, versions[0].label)
    if chosen == "expanded":
        where: list[str] = []
        for sentence in dict.fromkeys(evidence[chosen]):
            for place in prep.of_kind("place", sentence):
                if place.label not in where:
                    where.append(place.label)
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
        return lex.periods.label(found)
    # "a monthly fee of $20": the period word just before the amount, in its clause.
    before = lex.periods.find(text, max(clause_start, start - 30), start)
    return before[-1][0] if before else None


def _plan(prep: Prepared, clause: tuple[int, int], start: int, end: int) -> str | None:
    """The plan named nearest the amount within its clause, before it on a tie."""
    plans = prep.of_kind("plan", (max(clause[0], start - 80), min(clause[1], end + 50)))
    before = [p for p in plans if p.end <= start]
    after = [p for p in plans if p.start >= end]
    # Of phrases ending at the same place ("sora-2" inside "sora-2-pro") the longest counts.
    near = max(before, key=lambda p: (p.end, p.end - p.start), default=None)
    far = min(after, key=lambda p: (p.start, p.start - p.end), default=None)
    if near is not None and (far is None or start - near.end <= far.start - end):
        return near.label
    return far.label if far is not None else None


def _clause_end(lex: Lexicon, text: str, end: int) -> int:
    found = lex.clause_breaks.search(text, end, min(len(text), end + 160))
    return found.start() if found else min(len(text), end + 160)


def extract_pricing(lex: Lexicon, prep: Prepared) -> tuple[bool, list[dict[str, Any]]]:
    """Whether the item is about pricing, and the prices it states."""
    text = prep.text
    entries: list[dict[str, Any]] = []
    if _DIGIT.search(text):
        for m in lex.money.finditer(text):
            entries.extend(_price(lex, prep, m))
    topic = bool(entries)
    if not topic:
        for m in lex.pricing_cues.finditer(text):
            if not _off_topic(prep, prep.sentence_at(m.start())):
                topic = True
                break
    unique = list(
        {tuple(v for k, v in e.items() if k != "_at"): e for e in reversed(entries)}.values()
    )
    # The same price said twice (title and summary), once with more detail: keep that one.
    return topic, [e for e in unique if not any(_subsumed(e, o) for o in unique)]


def _subsumed(price: dict[str, Any], other: dict[str, Any]) -> bool:
    """``other`` says all that ``price`` says, and more."""
    return other is not price and all(
        v is None or other[k] == v for k, v in price.items() if k != "_at"
    )


def _price(lex: Lexicon, prep: Prepared, m: re.Match[str]) -> list[dict[str, Any]]:
    text = prep.text
    groups = m.groupdict()
    if groups.get("m1") or groups.get("m2"):
        return []  # thousands, millions: a deal or a loss, not a price
    sentence = prep.sentence_at(m.start())
    if _off_topic(prep, sentence):
        return []
    clause = (
        max(sentence[0], _clause_start(lex, text, m.start())),
        _clause_end(lex, text, m.end()),
    )
    if lex.pricing_suppress and lex.pricing_suppress.search(text, *clause):
        return []
    code = _currency(lex, m)
    raw = [groups.get("n1") or groups.get("n2"), groups.get("n1b") or groups.get("n2b")]
    amounts = [_number(n) for n in raw if n]
    if code is None or not amounts or max(amounts) >= lex.max_amount:
        return []
    plan = _plan(prep, clause, m.start(), m.end())
    period = _period(lex, text, m.end(), clause[0], m.start())
    if plan is None and period is None:
        priced = lex.price_words.search(text, max(clause[0], m.start() - 40), m.start())
        if priced is None and lex.pricing_cues.search(text, *sentence) is None:
            return []
    return [
        {"plan": plan, "amount": _clean(amount), "currency": code, "period": period,
         "_at": m.start()}
        for amount in amounts
    ]  # fmt: skip


# ----------------------------------------------------------------- partnership --


def extract_partners(lex: Lexicon, prep: Prepared) -> tuple[bool, list[str]]:
    """Whether the item is about a partnership, and the partners' Latin names."""
    text = prep.text
    topic = False
    partners: list[str] = []
    for sentence in prep.sentences:
        if lex.partnership_cues.search(text, *sentence) is None:
            continue
        if lex.partnership_suppress and lex.partnership_suppress.search(text, *sentence):
            continue
        if _off_topic(prep, sentence):
            continue
        named = [m.label for m in prep.of_kind("partner", sentence)]
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
        found = lex.phrases.find(normalize_for_matching(name))
        curated = [m.label for m in found if m.kind == "partner"]
        if curated:  # "Walt Disney Studios" is Disney, "Cannes Lions Festival" Cannes Lions
            names.extend(curated)
        elif not any(m.kind in ("competitor", "name", "version", "anchor") for m in found):
            names.append(name)
    return names


def extract_partner_claims(lex: Lexicon, prep: Prepared, zone: int) -> dict[str, list[str]]:
    """Partners the claim zone (before ``zone``) reports as new or as ended.

    ``{"partners": [...], "partners_ended": [...]}``, keys only when non-empty. A
    partnership cue in a zone sentence that names the product (or a headline naming
    it) makes the zone's partners claims; a sentence saying a deal ends makes its
    partners ended instead. Partners mentioned further down are background.
    """
    text = prep.text
    product_in_title = any(
        m.kind in ("name", "version") and m.start < prep.title_end for m in prep.mentions
    )
    cue = False
    named: list[str] = []
    ended: list[str] = []
    for start, end in prep.sentences:
        if start >= zone:
            break
        span = (start, min(end, zone))
        if lex.partnership_suppress and lex.partnership_suppress.search(text, *span):
            continue
        if _off_topic(prep, span):
            continue
        names = [
            m.label for m in prep.of_kind("partner", span)
            if not _VENUE.search(prep.plain, max(0, m.start - 14), m.start)
        ]  # fmt: skip
        if names and lex.partnership_ended.search(prep.plain, *span):
            ended.extend(names)
            continue
        product = product_in_title or any(
            m.kind in ("name", "version", "subject")
            for m in prep.mentions
            if span[0] <= m.start < span[1]
        )
        if product and lex.partnership_cues.search(text, *span):
            cue = True
        named.extend(names)
    out: dict[str, list[str]] = {}
    if ended:
        out["partners_ended"] = list(dict.fromkeys(ended))
    if cue:
        lead = _LEAD.split(prep.kept_summary, maxsplit=1)[0]
        for pattern in lex.capture:
            for m in pattern.finditer(lead):
                named.extend(_captured(lex, m.group("name")))
        fresh = [n for n in dict.fromkeys(named) if n not in out.get("partners_ended", [])]
        if fresh:
            out["partners"] = fresh
    return out


_LEAD = re.compile(r"(?<=[.!?؟])\s")
# A festival where a film is shown is a venue, not a partner ("shown at Cannes Lions").
_VENUE = re.compile(r"(?:\b(?:at|during)(?:\s+the)?|(?<!\w)(?:في|خلال))\s+$")

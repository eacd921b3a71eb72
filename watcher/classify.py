"""Classify one news item: is it about the watched product, which topics, which facts.

The watcher calls `default_classifier().classify(title, summary, lang)`. All words and
patterns come from a lexicon (`watcher/lexicons/sora.toml`); this module decides
relevance and assembles what `sorawatch.watcher.facts` extracts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sorawatch.vocabulary import TOPICS
from sorawatch.watcher.facts import (
    extract_partner_claims,
    extract_partners,
    extract_pricing,
    extract_status,
)
from sorawatch.watcher.lexicon import Lexicon, load_lexicon
from sorawatch.watcher.mentions import Mention, Prepared

__all__ = ["TOPICS", "Classification", "Classifier", "default_classifier", "load_lexicon"]


# News items are a headline and a few sentences (the watcher keeps 500 and 4,000
# characters); past these only the beginning is read, so a whole article pasted into
# the CLI costs milliseconds, not seconds.
MAX_TITLE = 1_000
MAX_SUMMARY = 8_000


@dataclass(frozen=True, slots=True)
class Classification:
    """The verdict on one item. Not relevant → no topics and no facts."""

    relevant: bool
    topics: tuple[str, ...] = ()
    facts: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form: ``{"relevant", "topics", "facts"}``."""
        facts = {k: (list(v) if isinstance(v, list) else v) for k, v in self.facts.items()}
        if "pricing" in facts:
            facts["pricing"] = [dict(p) for p in facts["pricing"]]
        return {"relevant": self.relevant, "topics": list(self.topics), "facts": facts}


_NOT_RELEVANT = Classification(relevant=False)


class Classifier:
    """Applies one lexicon; cheap to call, safe to share between threads (its few caches
    are replaced whole, never edited in place)."""

    def __init__(self, lexicon: Lexicon) -> None:
        self.lexicon = lexicon

    def classify(
        self, title: str, summary: str, lang: str | None = None, first_party: bool = False
    ) -> Classification:
        """Classify an item from its title and summary; ``lang`` ("ar", "en") may be None.
        ``first_party``: the vendor's own feed, where "Sora" needs no other context.

        The same rules run for every language, because items mix scripts ("أطلقت OpenAI
        نموذج Sora"); ``lang`` is accepted for callers that know it and does not change
        the verdict. Never raises on odd text.
        """
        del lang  # one rule set for both scripts: see the docstring
        prep = Prepared.of(
            self.lexicon.phrases, (title or "")[:MAX_TITLE], (summary or "")[:MAX_SUMMARY]
        )
        if not self.is_relevant(prep, first_party):
            return _NOT_RELEVANT
        lex = self.lexicon
        zone = self.claim_zone(prep)
        facts = extract_status(lex, prep, zone) if zone else {}
        # What the item is about: a status mentioned as background is still its topic.
        topics = ["status"] if facts or extract_status(lex, prep) else []
        pricing_topic, prices = extract_pricing(lex, prep)
        if pricing_topic:
            topics.append("pricing")
            claimed = self._claimed_prices(prep, zone, prices, bool(facts))
            if claimed:
                facts["pricing"] = claimed
        partnership_topic, _ = extract_partners(lex, prep)
        if partnership_topic:
            topics.append("partnership")
            if zone:
                facts.update(extract_partner_claims(lex, prep, zone))
        return Classification(relevant=True, topics=tuple(topics), facts=facts)

    def claim_zone(self, prep: Prepared) -> int:
        """Where the part of an item that can claim something new ends (0: nowhere).

        The headline and the lead's first sentence claim, when they name the product;
        an item whose headline says it is a guide, a round-up, a comparison, an opinion
        or a question claims nothing, whatever it mentions. A paragraph without a
        headline claims in its first two sentences.
        """
        zone = prep.lead_end
        if not prep.title_end:  # a paragraph: the article around it named the product
            return zone
        if self.lexicon.genres.search(prep.plain, 0, prep.title_end):
            return 0
        if not any(m.kind in ("name", "version") and m.start < zone for m in prep.mentions):
            return 0
        return zone

    @staticmethod
    def _claimed_prices(
        prep: Prepared, zone: int, prices: list[dict[str, Any]], launch: bool
    ) -> list[dict[str, Any]]:
        """Prices the item reports as new: those in the claim zone, or all of them when
        the claim zone announces a launch or pricing (the lead of a launch story lists
        its prices in the next sentence). A price quoted further down is background."""
        if not zone or not prices:
            return []
        in_zone = [p for p in prices if p.get("_at", zone) < zone]
        chosen = prices if launch or in_zone else []
        return [{k: v for k, v in p.items() if k != "_at"} for p in chosen]

    def is_relevant(self, prep: Prepared, first_party: bool = False) -> bool:
        """About the product at all: named, in context, not another Sora, not in passing.
        On the vendor's own feed the vendor is the context."""
        names = [m for m in prep.mentions if m.kind in ("name", "version")]
        if not names:
            return False
        passing = [m.span() for m in self.lexicon.passing.finditer(prep.text)]
        if passing:
            names = [n for n in names if not any(a < n.end and n.start < b for a, b in passing)]
            if not names:
                return False
        kinds = {m.kind for m in prep.mentions}
        anchored = first_party or "anchor" in kinds
        if "domain" in kinds and not (anchored or "version" in kinds):
            return False  # Kingdom Hearts, a bitcoin fund: another Sora's world
        tiers = {"strong" if n.kind == "version" else n.label for n in names}
        if tiers == {"weak"} and not anchored:
            return False
        if not (anchored or "strong" in tiers or self._in_context(prep)):
            return False
        return self._salient(prep, names)

    def _in_context(self, prep: Prepared) -> bool:
        if any(m.kind == "strong_context" for m in prep.mentions):
            return True
        weak = {m.label for m in prep.mentions if m.kind == "weak_context"}
        return len(weak) >= self.lexicon.min_weak

    @staticmethod
    def _salient(prep: Prepared, names: list[Mention]) -> bool:
        """Not an item about a competitor that names the product on the side."""
        rivals = [m for m in prep.mentions if m.kind == "competitor"]
        if not rivals:
            return True
        if any(n.start < prep.title_end for n in names):
            return True
        if any(r.start < prep.title_end for r in rivals):
            return False
        # A title that names neither: the summary decides, and a titled item whose
        # summary names rivals as often as the product is about the rivals.
        ours, theirs = _spans(names), _spans(rivals)
        return ours > theirs or (prep.title_end == 0 and ours == theirs)


def _spans(mentions: list[Mention]) -> int:
    """How many places the mentions cover ("OpenAI's Sora app" is one, not three)."""
    count, end = 0, -1
    for m in sorted(mentions, key=lambda m: m.start):
        if m.start >= end:
            count += 1
        end = max(end, m.end)
    return count


@lru_cache(maxsize=1)
def default_classifier() -> Classifier:
    """The classifier for the shipped Sora lexicon, built once per process."""
    return Classifier(load_lexicon())

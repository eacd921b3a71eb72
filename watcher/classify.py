"""Classify one news item: is it about the watched product, which topics, which facts.

The watcher calls `default_classifier().classify(title, summary, lang)`. All words and
patterns come from a lexicon (`watcher/lexicons/sora.toml`); this module decides
relevance and assembles what `watcher.facts` extracts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from watcher.facts import Prepared, extract_partners, extract_pricing, extract_status
from watcher.lexicon import Lexicon, load_lexicon

__all__ = ["TOPICS", "Classification", "Classifier", "default_classifier", "load_lexicon"]

TOPICS: tuple[str, ...] = ("status", "pricing", "partnership")


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
    """Applies one lexicon; cheap to call, safe to share between threads (no mutable state)."""

    def __init__(self, lexicon: Lexicon) -> None:
        self.lexicon = lexicon

    def classify(self, title: str, summary: str, lang: str | None = None) -> Classification:
        """Classify an item from its title and summary; ``lang`` ("ar", "en") may be None.

        The same rules run for every language, because items mix scripts ("أطلقت OpenAI
        نموذج Sora"); ``lang`` is accepted for callers that know it and does not change
        the verdict. Never raises on odd text.
        """
        del lang  # one rule set for both scripts: see the docstring
        prep = Prepared.of(title or "", summary or "")
        if not self.is_relevant(prep):
            return _NOT_RELEVANT
        lex = self.lexicon
        facts = extract_status(lex, prep)
        topics = ["status"] if facts else []
        pricing_topic, prices = extract_pricing(lex, prep)
        if pricing_topic:
            topics.append("pricing")
            if prices:
                facts["pricing"] = prices
        partnership_topic, partners = extract_partners(lex, prep)
        if partnership_topic:
            topics.append("partnership")
            if partners:
                facts["partners"] = partners
        return Classification(relevant=True, topics=tuple(topics), facts=facts)

    def is_relevant(self, prep: Prepared) -> bool:
        """About the product at all: named, in context, not another Sora, not in passing."""
        lex = self.lexicon
        text = prep.text
        mentions = lex.names.find(text)
        if not mentions:
            return False
        blocked = [
            m.span() for p in (lex.masks, lex.passing) if p is not None for m in p.finditer(text)
        ]
        if blocked:
            mentions = [
                m for m in mentions if not any(b0 < m[2] and m[1] < b1 for b0, b1 in blocked)
            ]
            if not mentions:
                return False
        anchored = lex.anchors is not None and lex.anchors.search(text) is not None
        if not anchored and lex.domains is not None and lex.domains.search(text):
            return False
        tiers = {tier for tier, _, _ in mentions}
        if tiers == {"weak"} and not anchored:
            return False
        if not (anchored or "strong" in tiers or self._in_context(text)):
            return False
        return self._salient(prep, mentions)

    def _in_context(self, text: str) -> bool:
        lex = self.lexicon
        if lex.strong_context is not None and lex.strong_context.search(text):
            return True
        if lex.weak_context is None:
            return False
        return len({m.group() for m in lex.weak_context.finditer(text)}) >= lex.min_weak

    def _salient(self, prep: Prepared, mentions: list[tuple[str, int, int]]) -> bool:
        """Not an item about a competitor that names the product on the side."""
        lex = self.lexicon
        if lex.competitors is None:
            return True
        rivals = [m.start() for m in lex.competitors.finditer(prep.text)]
        if not rivals:
            return True
        in_title = any(start < prep.title_end for _, start, _ in mentions)
        if in_title:
            return True
        if any(start < prep.title_end for start in rivals):
            return False
        return len(mentions) >= len(rivals)


@lru_cache(maxsize=1)
def default_classifier() -> Classifier:
    """The classifier for the shipped Sora lexicon, built once per process."""
    return Classifier(load_lexicon())

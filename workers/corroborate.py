"""When is a claimed change confirmed? Pure rules over the reports of one claim.

A change one report claims is *reported*; it becomes *confirmed* by one of:

- ``official``: a first-party source says it (a feed with ``trust = "official"``);
- ``publishers``: a second, independent publisher reports the same change within
  ``workers.window_days`` of the first. Independent means another publisher name and
  not a syndicated copy: an item whose text matched the first report's story as the
  same item or near-identical text is a copy, whoever published it;
- ``headline``: (off unless ``workers.confirm_headline``) one report whose headline
  states the change without hedge. Measured on the history replay before trusting it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sorawatch.projections._common import epoch
from sorawatch.projections.state import norm

DAY = 86400.0
COPY_LEVELS = ("item", "story")


@dataclass(frozen=True, slots=True)
class Report:
    """One item's report of a change, as corroboration needs it."""

    publisher: str | None
    official: bool
    story: str
    level: str | None  # how the item matched its story (None: it started it)
    at: float  # epoch seconds
    headline: bool = False  # the claim stands in the headline, unhedged


def confirmed_by(
    report: Report,
    earlier: dict[str, Any] | None,
    window_days: int,
    headline_rule: bool = False,
) -> str | None:
    """The rule that confirms the change ``report`` claims, or None (still reported).

    ``earlier`` is the state projection's record of the claim's earlier reports.
    """
    if report.official:
        return "official"
    for other in (earlier or {}).get("reports") or []:
        if abs(report.at - epoch(other.get("at"))) > window_days * DAY:
            continue
        if independent(other, report):
            return "publishers"
    if headline_rule and report.headline:
        return "headline"
    return None


def independent(other: dict[str, Any], report: Report) -> bool:
    """Another publisher, and not a copy of the other's text."""
    if not report.publisher or norm(report.publisher) == norm(other.get("publisher")):
        return False
    return not (report.level in COPY_LEVELS and report.story == other.get("story"))

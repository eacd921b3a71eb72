"""Folding an item's facts into the product state: which changes does it make?

Pure: takes the current state (as the state projection reads it) and returns the
changes; the change worker records each as a ``state.changed`` event.

Rules:
- status: a different value (or version) is a change, unless the report is dated
  (has a pubDate) earlier than the dated report that set the current status, so a
  late copy of an old article never turns the clock back. Undated reports count
  as of when they were first seen, and are never "older" than anything. A report without a version keeps the
  current version ("now available in the UAE" is still Sora 2).
- pricing: a plan never seen is a change (before null); a known plan at another
  amount, currency or period is a change, again unless the report is older.
- partners: a partner never seen is a change; partners are never removed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sorawatch.projections._common import epoch
from sorawatch.projections.state import norm, plan_key, same_price


@dataclass(frozen=True, slots=True)
class Change:
    topic: str
    before: dict[str, Any] | None
    after: dict[str, Any]

    @property
    def signature(self) -> list[Any]:
        """What the change is, for its alert's identity."""
        return [_plain(self.before), _plain(self.after)]


def _plain(value: dict[str, Any] | None) -> Any:
    if value is None:
        return None
    return {k: norm(str(v)) if v is not None else None for k, v in sorted(value.items())}


def fold(
    status: dict[str, Any] | None,
    pricing: list[dict[str, Any]],
    partners: list[dict[str, Any]],
    facts: dict[str, Any] | None,
    asof: float,
    dated: bool = True,
) -> list[Change]:
    """The changes ``facts`` (reported as of ``asof``, epoch seconds; ``dated`` when that
    is the item's pubDate) make to the state."""
    facts = facts or {}

    def newer(entry: dict[str, Any]) -> bool:
        if not dated or not entry.get("dated", False):
            return True
        return asof >= epoch(entry.get("since"))

    changes: list[Change] = []
    if facts.get("status"):
        version = facts.get("version") or (status or {}).get("version")
        after = {"value": facts["status"], "version": version}
        if status is None:
            changes.append(Change("status", None, after))
        else:
            before = {"value": status["value"], "version": status.get("version")}
            differs = norm(before["value"]) != norm(after["value"]) or norm(
                before["version"]
            ) != norm(after["version"])
            if differs and newer(status):
                changes.append(Change("status", before, after))
    known = {plan_key(p): p for p in pricing}
    for plan in facts.get("pricing") or []:
        if not isinstance(plan, dict) or not plan.get("plan"):
            continue
        after = {k: plan.get(k) for k in ("plan", "amount", "currency", "period")}
        current = known.get(plan_key(plan))
        if current is None:
            changes.append(Change("pricing", None, after))
            known[plan_key(plan)] = {**after, "since": None}
        elif not same_price(current, plan) and newer(current):
            before = {k: current.get(k) for k in ("plan", "amount", "currency", "period")}
            changes.append(Change("pricing", before, after))
    seen = {norm(p.get("name")) for p in partners}
    for name in facts.get("partners") or []:
        if name and norm(name) not in seen:
            seen.add(norm(name))
            changes.append(Change("partnership", None, {"partner": name}))
    return changes

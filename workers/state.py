"""Folding an item's claims into the product state: which changes does it propose?

Pure: takes a snapshot of the state (as the state projection reads it), the claims an
item reports as new (the classifier's ``facts``; background mentions never get here)
and when it was reported; returns the changes those claims would make. Whether a
change is confirmed yet is `sorawatch.workers.corroborate`'s question, not this module's.

The rules, each with a name the tests use:

- ``lifecycle``: status is kept per version line (Sora, Sora 2, …) and moves forward
  only: announced → research preview / limited access → released → expanded. A claim
  of an earlier step within one line is ignored: going back needs an explicit claim
  of a step back (``paused``, ``discontinued``, or ``delayed`` before a release).
- ``scope``: an ``expanded`` claim naming a place the line does not reach yet is a
  change even when the line is already expanded ("now in Japan" after "now in the EU").
- ``resume``: a paused line moves on with any running status claim.
- ``open to all``: a line that expanded while still in limited access (an API, a
  new platform, invite-only all along) is released when it opens to everyone.
- ``ended``: nothing moves a discontinued line.
- ``new line``: a claim naming a version never seen opens its line; a claim with no
  version is about the newest line; ``discontinued`` with no version ends every line.
- ``older report``: a dated report older than the dated fact it would replace never
  changes it (a late copy of an old article does not turn the clock back).
- ``plans``: a plan not on offer, or on offer at another price, is a change.
- ``partners``: a partner not active is a change; a claimed end of an active
  partnership is a change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sorawatch.projections._common import epoch
from sorawatch.projections.state import norm, plan_key, same_price

# Where each running status stands on a line's lifecycle.
RANK = {"announced": 0, "delayed": 0, "research_preview": 1, "limited_access": 1,
        "released": 2, "expanded": 3}  # fmt: skip
RUNNING = ("research_preview", "limited_access", "released", "expanded")
# A line's default name before any version is named ("Sora" itself).
FIRST_LINE = "Sora"
PRICE_FIELDS = ("plan", "amount", "currency", "period")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The state a decision reads: open lines, plans on offer, active partners."""

    lines: dict[str, dict[str, Any]] = field(default_factory=dict)  # line → entry
    plans: dict[str, dict[str, Any]] = field(default_factory=dict)  # plan key → entry
    partners: dict[str, dict[str, Any]] = field(default_factory=dict)  # norm name → entry

    def newest_line(self) -> str | None:
        """The line opened last: the one the headline status speaks of."""
        if not self.lines:
            return None
        return max(self.lines.items(), key=lambda kv: (epoch(kv[1].get("opened")), kv[0]))[0]


@dataclass(frozen=True, slots=True)
class Change:
    topic: str
    key: str  # status:<line> | plan:<plan> | partner:<name>
    before: dict[str, Any] | None
    after: dict[str, Any]

    @property
    def signature(self) -> list[Any]:
        """What the change is, for its identity (alerts, corroboration)."""
        return [self.key, _plain(self.before), _plain(self.after)]

    @property
    def claim(self) -> str:
        """What is claimed, whatever the state before: reports agreeing on this agree."""
        return f"{norm(self.key)}|{_plain(self.after)}"


def _plain(value: dict[str, Any] | None) -> Any:
    if value is None:
        return None
    return {k: _flat(v) for k, v in sorted(value.items())}


def _flat(value: Any) -> Any:
    if isinstance(value, list):
        return sorted(norm(str(v)) for v in value)
    return norm(str(value)) if value is not None else None


def line_of(version: str | None, lines: dict[str, str]) -> str | None:
    """The version line a version label belongs to ("Sora Turbo" → "Sora")."""
    if not version:
        return None
    return lines.get(version, version)


def fold(
    snap: Snapshot,
    facts: dict[str, Any] | None,
    asof: float,
    dated: bool = True,
    line_names: dict[str, str] | None = None,
) -> list[Change]:
    """The changes the claims in ``facts`` (reported as of ``asof``, epoch seconds;
    ``dated`` when that is the item's pubDate) would make to ``snap``."""
    facts = facts or {}
    changes: list[Change] = []

    def newer(entry: dict[str, Any]) -> bool:  # the ``older report`` rule
        if not dated or not entry.get("dated", False):
            return True
        return asof >= epoch(entry.get("since"))

    if facts.get("status"):
        changes += _status(snap, facts, line_names or {}, newer)
    for plan in facts.get("pricing") or []:
        if not isinstance(plan, dict) or not plan.get("plan"):
            continue
        after = {k: plan.get(k) for k in PRICE_FIELDS}
        current = snap.plans.get(plan_key(plan))
        if current is None:
            changes.append(Change("pricing", f"plan:{plan['plan']}", None, after))
        elif not same_price(current, plan) and newer(current):
            before = {k: current.get(k) for k in PRICE_FIELDS}
            changes.append(Change("pricing", f"plan:{current['plan']}", before, after))
    told: set[str] = set()
    for name in facts.get("partners") or []:
        if name and norm(name) not in snap.partners and norm(name) not in told:
            told.add(norm(name))
            after = {"partner": name, "active": True}
            changes.append(Change("partnership", f"partner:{name}", None, after))
    for name in facts.get("partners_ended") or []:
        entry = snap.partners.get(norm(name))
        if entry is not None and newer(entry):
            before = {"partner": entry["name"], "active": True}
            after = {"partner": entry["name"], "active": False}
            changes.append(Change("partnership", f"partner:{entry['name']}", before, after))
    return changes


def _status(
    snap: Snapshot, facts: dict[str, Any], names: dict[str, str], newer: Any
) -> list[Change]:
    claimed = str(facts["status"])
    line = line_of(facts.get("version"), names)
    if line is None:
        if claimed == "discontinued":  # the product itself: every line ends
            return [c for name in sorted(snap.lines) for c in _step(snap, name, facts, newer)]
        line = snap.newest_line() or FIRST_LINE
    return _step(snap, line, facts, newer)


def _step(snap: Snapshot, line: str, facts: dict[str, Any], newer: Any) -> list[Change]:
    claimed = str(facts["status"])
    where = [str(w) for w in facts.get("where") or []]
    entry = snap.lines.get(line)
    after: dict[str, Any] = {"value": claimed, "version": line}
    if entry is None:  # ``new line``
        if claimed in ("delayed", "paused", "discontinued"):
            return []  # a step back of something never shown is a rumour's echo
        if where:
            after["where"] = where
        return [Change("status", f"status:{line}", None, after)]
    current = str(entry["value"])
    before = {"value": current, "version": line}
    if not newer(entry) or current == "discontinued":  # ``older report``, ``ended``
        return []
    if claimed == current:
        scope = [w for w in where if norm(w) not in {norm(s) for s in entry.get("where") or []}]
        if claimed == "expanded" and scope:  # ``scope``
            return [Change("status", f"status:{line}", before, {**after, "where": scope})]
        return []
    if claimed == "discontinued":
        return [Change("status", f"status:{line}", before, after)]
    if claimed == "paused":  # an announced product may have testers: their access pauses
        pausable = (*RUNNING, "announced")
        return [Change("status", f"status:{line}", before, after)] if current in pausable else []
    if current == "paused":  # ``resume``
        if claimed in RUNNING:
            return [Change("status", f"status:{line}", before, _where(after, where))]
        return []
    if claimed == "delayed":
        return [Change("status", f"status:{line}", before, after)] if RANK[current] < 1 else []
    if RANK.get(claimed, -1) > RANK.get(current, -1):  # ``lifecycle``: forward only
        return [Change("status", f"status:{line}", before, _where(after, where))]
    # (an entry without its steps, written before they were kept, went the usual way)
    steps = entry.get("steps") or ["released"]
    if claimed == "released" and "released" not in steps:
        # ``open to all``: a line that grew (an API, a platform) while still invite-only
        return [Change("status", f"status:{line}", before, after)]
    return []


def _where(after: dict[str, Any], where: list[str]) -> dict[str, Any]:
    return {**after, "where": where} if where and after["value"] == "expanded" else after

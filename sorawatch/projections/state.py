"""The current state of the product: status, plans and prices, partners, with evidence.

Written only by ``state.changed`` events (a decision the change worker recorded)
and, for evidence, by ``story.started`` / ``story.merged`` (a report that repeats
what the state already says is added to that entry's evidence).

Keys under ``keys.projection("state")``: ``:status`` (JSON), ``:pricing`` and
``:partners`` (hashes: normalised name → JSON), ``:changes:<topic>`` (ids of the
state.changed events per topic: how many times that topic changed).
"""

from __future__ import annotations

from typing import Any

from redis import Redis

from sorawatch.events import Event
from sorawatch.keys import Keys
from sorawatch.projections import handles
from sorawatch.projections._common import dumps, loads

# Enough to show where a fact came from, without growing without bound.
MAX_EVIDENCE = 20


def _ns(keys: Keys) -> str:
    return keys.projection("state")


def norm(value: str | None) -> str:
    """A name folded for comparison (plans, partners, versions)."""
    return " ".join(str(value or "").casefold().split())


def plan_key(plan: dict[str, Any]) -> str:
    return norm(plan.get("plan"))


def status(redis: Redis, keys: Keys) -> dict[str, Any] | None:
    """``{"value", "version", "since", "evidence"}`` or None when nothing is known."""
    raw = loads(redis.get(f"{_ns(keys)}:status"))
    return raw if isinstance(raw, dict) else None


def pricing(redis: Redis, keys: Keys) -> list[dict[str, Any]]:
    """Every known plan, by name."""
    rows = redis.hgetall(f"{_ns(keys)}:pricing")
    return [loads(rows[k]) for k in sorted(rows)]


def partners(redis: Redis, keys: Keys) -> list[dict[str, Any]]:
    """Every known partner, oldest first."""
    rows = [loads(v) for v in redis.hgetall(f"{_ns(keys)}:partners").values()]
    return sorted(rows, key=lambda p: (p.get("since") or "", norm(p.get("name"))))


def generation(redis: Redis, keys: Keys, topic: str) -> int:
    """How many times ``topic`` has changed (part of a change alert's identity)."""
    return int(redis.scard(f"{_ns(keys)}:changes:{topic}"))


def current(redis: Redis, keys: Keys) -> dict[str, Any]:
    """The whole state, as the contract describes it (with counts)."""
    from sorawatch.projections import alerts, stories  # they import this package too

    return {
        "status": status(redis, keys),
        "pricing": pricing(redis, keys),
        "partners": partners(redis, keys),
        "counts": {
            "items": stories.count_items(redis, keys),
            "stories": stories.count(redis, keys),
            "alerts": alerts.count(redis, keys),
        },
    }


@handles("state.changed")
def _on_changed(redis: Redis, keys: Keys, event: Event) -> None:
    d = event.data
    topic, after, since = d["topic"], d["after"], d["since"]
    evidence = [d["evidence"]] if d.get("evidence") else []
    # Whether ``since`` is a pubDate (comparable) or only when it was first seen.
    dated = bool(d.get("dated", False))
    with redis.pipeline() as pipe:
        if topic == "status":
            entry = {"value": after["value"], "version": after.get("version"), "since": since,
                     "dated": dated, "evidence": evidence}  # fmt: skip
            pipe.set(f"{_ns(keys)}:status", dumps(entry))
        elif topic == "pricing":
            entry = {**after, "since": since, "dated": dated, "evidence": evidence}
            pipe.hset(f"{_ns(keys)}:pricing", plan_key(after), dumps(entry))
        elif topic == "partnership":
            entry = {"name": after["partner"], "since": since, "dated": dated,
                     "evidence": evidence}  # fmt: skip
            pipe.hset(f"{_ns(keys)}:partners", norm(after["partner"]), dumps(entry))
        pipe.sadd(f"{_ns(keys)}:changes:{topic}", event.id)
        pipe.execute()


@handles("story.started", "story.merged")
def _on_report(redis: Redis, keys: Keys, event: Event) -> None:
    """A report repeating what the state says becomes evidence for it."""
    d = event.data
    facts = d.get("facts") or {}
    evidence = d.get("evidence")
    if not facts or not evidence:
        return
    current_status = status(redis, keys)
    if current_status and facts.get("status") == current_status["value"]:
        version = facts.get("version")
        same = version is None or norm(version) == norm(current_status.get("version"))
        if same and _add(current_status, evidence):
            redis.set(f"{_ns(keys)}:status", dumps(current_status))
    for plan in facts.get("pricing") or []:
        raw = redis.hget(f"{_ns(keys)}:pricing", plan_key(plan))
        entry = loads(raw)
        if entry and same_price(entry, plan) and _add(entry, evidence):
            redis.hset(f"{_ns(keys)}:pricing", plan_key(plan), dumps(entry))
    for name in facts.get("partners") or []:
        entry = loads(redis.hget(f"{_ns(keys)}:partners", norm(name)))
        if entry and _add(entry, evidence):
            redis.hset(f"{_ns(keys)}:partners", norm(name), dumps(entry))


def same_price(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """The same amount, currency and period (names already match)."""
    return (
        amount_text(a.get("amount")) == amount_text(b.get("amount"))
        and norm(a.get("currency")) == norm(b.get("currency"))
        and norm(a.get("period")) == norm(b.get("period"))
    )


def amount_text(amount: Any) -> str:
    """An amount in one canonical spelling (20, 20.0 and "20.00" are the same price)."""
    try:
        return f"{float(amount):.2f}"
    except (TypeError, ValueError):
        return norm(str(amount))


def _add(entry: dict[str, Any], evidence: dict[str, Any]) -> bool:
    items = entry.setdefault("evidence", [])
    if any(e.get("url") == evidence.get("url") for e in items) or len(items) >= MAX_EVIDENCE:
        return False
    items.append(evidence)
    return True

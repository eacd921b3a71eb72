"""The state of the product: status per version line, plans, partners, a timeline.

Written by ``state.changed`` (a confirmed change the change worker decided),
``change.reported`` (a change one report claims, not yet confirmed) and, for
evidence, ``story.started`` / ``story.merged`` (a report repeating what the state
says is added to that fact's evidence).

Keys under ``keys.projection("state")``:

- ``:lines`` hash line → entry (``value``, ``version``, ``since``, ``opened``,
  ``where``, ``confirmed_by``, ``evidence``): the status of each version line;
- ``:pricing`` / ``:partners`` hashes of the plans on offer and the active partners;
- ``:ended`` hash fact key → entry with ``until``: withdrawn plans, ended partners;
- ``:timeline`` (ids by since) and ``:tl`` (id → entry): every fact with since,
  until and evidence; ``:open`` fact key → id of its open timeline entry;
- ``:reported`` hash claim → the reports of a change not yet confirmed;
- ``:changes:<topic>`` ids of the state.changed events per topic.

Discontinuing every line withdraws every plan: nothing is on offer of a product that
no longer exists (rule ``shutdown``). A partnership ends only when a report says so.
"""

from __future__ import annotations

from typing import Any

from redis import Redis

from sorawatch.event_data import ChangeReported, Evidence, StateChanged, StoryFiled
from sorawatch.events import Event
from sorawatch.keys import Keys
from sorawatch.projections import handles
from sorawatch.projections._common import dumps, epoch, loads, text

# Enough to show where a fact came from, without growing without bound.
MAX_EVIDENCE = 20
PRICE_FIELDS = ("plan", "amount", "currency", "period")


def _ns(keys: Keys) -> str:
    return keys.projection("state")


def norm(value: str | None) -> str:
    """A name folded for comparison (plans, partners, versions)."""
    return " ".join(str(value or "").casefold().split())


def plan_key(plan: dict[str, Any]) -> str:
    return norm(plan.get("plan"))


def _hash(redis: Redis, name: str) -> dict[str, dict[str, Any]]:
    return {text(k): loads(v) for k, v in redis.hgetall(name).items()}


# -- reads ------------------------------------------------------------------------


def lines(redis: Redis, keys: Keys) -> dict[str, dict[str, Any]]:
    """Every version line's status entry, by line name."""
    return _hash(redis, f"{_ns(keys)}:lines")


def headline(entries: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The newest line's entry: the status the product is known by."""
    if not entries:
        return None
    return max(entries.values(), key=lambda e: (epoch(e.get("opened")), str(e.get("version"))))


def status(redis: Redis, keys: Keys) -> dict[str, Any] | None:
    """``{"value", "version", "since", "evidence", ...}`` of the newest line, or None."""
    return headline(lines(redis, keys))


def pricing(redis: Redis, keys: Keys) -> list[dict[str, Any]]:
    """The plans on offer, by name."""
    rows = _hash(redis, f"{_ns(keys)}:pricing")
    return [rows[k] for k in sorted(rows)]


def partners(redis: Redis, keys: Keys) -> list[dict[str, Any]]:
    """The active partners, oldest first."""
    rows = list(_hash(redis, f"{_ns(keys)}:partners").values())
    return sorted(rows, key=lambda p: (p.get("since") or "", norm(p.get("name"))))


def ended(redis: Redis, keys: Keys) -> dict[str, list[dict[str, Any]]]:
    """Withdrawn plans and ended partnerships, each with its ``until``."""
    rows = _hash(redis, f"{_ns(keys)}:ended")
    return {
        "pricing": [rows[k] for k in sorted(rows) if k.startswith("plan:")],
        "partners": [rows[k] for k in sorted(rows) if k.startswith("partner:")],
    }


def timeline(redis: Redis, keys: Keys, limit: int = 200) -> list[dict[str, Any]]:
    """Confirmed changes, newest first, each with since, until and evidence."""
    ids = [text(i) for i in redis.zrevrange(f"{_ns(keys)}:timeline", 0, max(limit, 0) - 1)]
    if not ids:
        return []
    rows = redis.hmget(f"{_ns(keys)}:tl", ids)
    return [loads(r) for r in rows if r is not None]


def reported(redis: Redis, keys: Keys) -> list[dict[str, Any]]:
    """Changes one source reports and none has confirmed yet, oldest first."""
    rows = list(_hash(redis, f"{_ns(keys)}:reported").values())
    return sorted(rows, key=lambda r: (r.get("first") or "", r.get("claim") or ""))


def reports_of(redis: Redis, keys: Keys, claim: str) -> dict[str, Any] | None:
    """The unconfirmed reports of one claimed change (see `sorawatch.workers.state.Change.claim`)."""
    raw = loads(redis.hget(f"{_ns(keys)}:reported", claim))
    return raw if isinstance(raw, dict) else None


def generation(redis: Redis, keys: Keys, topic: str) -> int:
    """How many times ``topic`` has changed (part of a change alert's identity)."""
    return int(redis.scard(f"{_ns(keys)}:changes:{topic}"))


def current(redis: Redis, keys: Keys) -> dict[str, Any]:
    """The whole state, as the contract describes it (with counts)."""
    from sorawatch.projections import alerts, stories  # they import this package too

    every = lines(redis, keys)
    return {
        "status": headline(every),
        "versions": [every[k] for k in sorted(every, key=lambda k: epoch(every[k].get("opened")))],
        "pricing": pricing(redis, keys),
        "partners": partners(redis, keys),
        "ended": ended(redis, keys),
        "reported": reported(redis, keys),
        "timeline": timeline(redis, keys),
        "counts": {
            "items": stories.count_items(redis, keys),
            "stories": stories.count(redis, keys),
            "alerts": alerts.count(redis, keys),
        },
    }


# -- handlers ---------------------------------------------------------------------


@handles("state.changed")
def _on_changed(redis: Redis, keys: Keys, event: Event) -> None:
    d = event.data_as(StateChanged)
    ns = _ns(keys)
    if redis.sismember(f"{ns}:changes:{d['topic']}", event.id):
        return  # applied already: the timeline entries below must not move again
    topic, before, after, since = d["topic"], d.get("before"), d["after"], d["since"]
    one = d.get("evidence")
    evidence: list[Evidence] = list(d.get("evidence_all") or ([one] if one else []))
    common = {"since": since, "dated": bool(d.get("dated", False)), "evidence": evidence,
              "confirmed_by": d.get("confirmed_by")}  # fmt: skip
    key = d.get("key") or _legacy_key(topic, after)
    with redis.pipeline() as pipe:
        if topic == "status":
            line = str(after.get("version") or "Sora")
            old = loads(redis.hget(f"{ns}:lines", line)) or {}
            where = list(dict.fromkeys([*(old.get("where") or []), *(after.get("where") or [])]))
            steps = list(dict.fromkeys([*(old.get("steps") or []), after["value"]]))
            entry = {"value": after["value"], "version": line, **common,
                     "opened": old.get("opened") or since, "where": where, "steps": steps}  # fmt: skip
            pipe.hset(f"{ns}:lines", line, dumps(entry))
        elif topic == "pricing":
            entry = {**{k: after.get(k) for k in PRICE_FIELDS}, **common}
            pipe.hset(f"{ns}:pricing", plan_key(after), dumps(entry))
            pipe.hdel(f"{ns}:ended", key)
        elif topic == "partnership":
            name = str(after["partner"])
            if after.get("active", True):
                entry = {"name": name, **common}
                pipe.hset(f"{ns}:partners", norm(name), dumps(entry))
                pipe.hdel(f"{ns}:ended", key)
            else:
                _end(redis, pipe, ns, key, f"{ns}:partners", norm(name), since, evidence)
        _timeline(redis, pipe, ns, event.id, key, {"topic": topic, "key": key, "before": before,
                  "after": after, **common, "until": None})  # fmt: skip
        for claim in d.get("claims") or []:
            pipe.hdel(f"{ns}:reported", claim)
        pipe.sadd(f"{ns}:changes:{topic}", event.id)
        if topic == "status" and after["value"] == "discontinued":
            _shutdown(redis, pipe, ns, line, since, evidence)
        pipe.execute()


def _legacy_key(topic: str, after: dict[str, Any]) -> str:
    if topic == "status":
        return f"status:{after.get('version') or 'Sora'}"
    if topic == "pricing":
        return f"plan:{after.get('plan')}"
    return f"partner:{after.get('partner')}"


def _timeline(
    redis: Redis, pipe: Any, ns: str, event_id: str, key: str, entry: dict[str, Any]
) -> None:
    """Open ``entry`` for ``key`` on the timeline, closing the one it replaces."""
    previous = redis.hget(f"{ns}:open", key)
    if previous is not None:
        old = loads(redis.hget(f"{ns}:tl", text(previous)))
        if isinstance(old, dict) and old.get("until") is None:
            old["until"] = entry["since"]
            pipe.hset(f"{ns}:tl", text(previous), dumps(old))
    pipe.hset(f"{ns}:tl", event_id, dumps(entry))
    pipe.zadd(f"{ns}:timeline", {event_id: epoch(entry["since"])})
    pipe.hset(f"{ns}:open", key, event_id)


def _end(redis: Redis, pipe: Any, ns: str, key: str, table: str, field: str, until: str,
         evidence: list[Evidence]) -> None:  # fmt: skip
    """Move one plan or partner from on offer / active to ended."""
    entry = loads(redis.hget(table, field))
    if not isinstance(entry, dict):
        return
    pipe.hdel(table, field)
    pipe.hset(f"{ns}:ended", key, dumps({**entry, "until": until, "ended_by": evidence}))


def _shutdown(redis: Redis, pipe: Any, ns: str, line: str, since: str,
              evidence: list[Evidence]) -> None:  # fmt: skip
    """Rule ``shutdown``: the last line discontinued withdraws every plan."""
    others = [loads(v) for k, v in redis.hgetall(f"{ns}:lines").items() if text(k) != line]
    if any(o.get("value") != "discontinued" for o in others):
        return
    for field, raw in redis.hgetall(f"{ns}:pricing").items():
        plan = loads(raw)
        _end(
            redis,
            pipe,
            ns,
            f"plan:{plan.get('plan')}",
            f"{ns}:pricing",
            text(field),
            since,
            evidence,
        )


@handles("change.reported")
def _on_reported(redis: Redis, keys: Keys, event: Event) -> None:
    """One more report of a change not yet confirmed."""
    d = event.data_as(ChangeReported)
    name = f"{_ns(keys)}:reported"
    entry = loads(redis.hget(name, d["claim"])) or {
        "claim": d["claim"], "topic": d["topic"], "key": d["key"], "before": d.get("before"),
        "after": d["after"], "first": d["since"], "story": d.get("story"), "reports": [],
    }  # fmt: skip
    report = {"publisher": d.get("publisher"), "item_event": d.get("item_event"),
              "story": d.get("story"), "at": d["since"], "evidence": d.get("evidence")}  # fmt: skip
    if any(r.get("item_event") == report["item_event"] for r in entry["reports"]):
        return
    entry["reports"].append(report)
    redis.hset(name, d["claim"], dumps(entry))


@handles("story.started", "story.merged")
def _on_report(redis: Redis, keys: Keys, event: Event) -> None:
    """A report repeating what the state says becomes evidence for it."""
    d = event.data_as(StoryFiled)
    facts = d.get("facts") or {}
    evidence = d.get("evidence")
    if not facts or not evidence:
        return
    ns = _ns(keys)
    if facts.get("status"):
        every = lines(redis, keys)
        version = facts.get("version")
        for line, entry in every.items():
            if entry.get("value") != facts["status"]:
                continue
            if version is not None and norm(version) not in (
                norm(line),
                norm(entry.get("version")),
            ):
                continue
            if _add(entry, evidence):
                redis.hset(f"{ns}:lines", line, dumps(entry))
    for plan in facts.get("pricing") or []:
        entry = loads(redis.hget(f"{ns}:pricing", plan_key(plan)))
        if entry and same_price(entry, plan) and _add(entry, evidence):
            redis.hset(f"{ns}:pricing", plan_key(plan), dumps(entry))
    for name in facts.get("partners") or []:
        entry = loads(redis.hget(f"{ns}:partners", norm(name)))
        if entry and _add(entry, evidence):
            redis.hset(f"{ns}:partners", norm(name), dumps(entry))


def same_price(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """The same amount, currency and period (names already match); a period one report
    leaves out is unknown, not different."""
    periods = {norm(a.get("period")), norm(b.get("period"))} - {""}
    return (
        amount_text(a.get("amount")) == amount_text(b.get("amount"))
        and norm(a.get("currency")) == norm(b.get("currency"))
        and len(periods) <= 1
    )


def amount_text(amount: Any) -> str:
    """An amount in one canonical spelling (20, 20.0 and "20.00" are the same price)."""
    try:
        return f"{float(amount):.2f}"
    except (TypeError, ValueError):
        return norm(str(amount))


def _add(entry: dict[str, Any], evidence: Evidence) -> bool:
    items = entry.setdefault("evidence", [])
    if any(e.get("url") == evidence.get("url") for e in items) or len(items) >= MAX_EVIDENCE:
        return False
    items.append(evidence)
    return True

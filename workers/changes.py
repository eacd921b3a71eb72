"""Processing one item event: dedupe, fold facts into the state, raise alerts.

``process`` is what the ``changes`` queue runs for every ``item.seen`` /
``item.revised``. Under a short Redis lock (one change decision at a time, across
workers) it:

1. files the item under a story: a new one (``story.started``) or an earlier one
   (``story.merged`` with ``level`` item|story|event, see ``workers.dedupe``);
2. folds its facts into the state (``workers.state.fold``): each change is a
   ``state.changed`` event;
3. raises alerts: a ``change`` alert per state change, and a ``news`` alert per
   topic for the first story of an event (a new story whose topic facts were not
   already told within the window). Each is an ``alert.raised`` event whose id
   derives from topic, kind and fact signature (plus the state generation for
   changes, the first story for news), appended with its fan-out job.

All of these are appended in one transaction, then applied to the projections
in log order, still under the lock: the story index and the state the next item
sees already hold this one. The decision event lists the events that went with
it (``follow``), so a re-run of the job (RQ is at-least-once) re-applies them
instead of deciding again.

Quiet items fold into state and the story index but raise nothing: baseline
items (a feed's first poll), and items published more than
``settings.workers.max_age_days`` before they were first seen (a backlog entry,
or an old article newly in a feed, is evidence, not news). A report older than
the state it would replace never changes it (see ``workers.state``).
"""

from __future__ import annotations

import contextlib
from typing import Any

from redis import Redis
from redis.exceptions import LockError

from sorawatch import metrics
from sorawatch.errors import EventError, SorawatchError
from sorawatch.events import Event, EventLog, Job, event_id, utcnow
from sorawatch.keys import Keys, digest
from sorawatch.projections import alerts, apply, state, stories
from sorawatch.projections._common import epoch, iso
from sorawatch.projections.similarity import signatures
from sorawatch.settings import WorkerSettings
from workers import dedupe, waits
from workers.state import fold

ITEM_TYPES = ("item.seen", "item.revised")
LOCK_TIMEOUT = 60.0  # a decision takes milliseconds; this only frees a dead worker's lock
LOCK_WAIT = 120.0
DAY = 86400.0


class LockTimeout(SorawatchError):
    """Another worker held the change lock for too long."""


def process(
    redis: Redis,
    keys: Keys,
    log: EventLog,
    workers: WorkerSettings,
    item_event_id: str,
    now: str | None = None,
) -> str:
    """Process one item event; returns the outcome (started, merged:<level>, done).

    Raises EventError when the event is unknown or not an item, LockTimeout when
    the change lock cannot be had. Appends story.*, state.changed and alert.raised
    events (alerts with their fan-out job) and applies them.
    """
    lock = redis.lock(keys.changes_lock, timeout=LOCK_TIMEOUT, blocking_timeout=LOCK_WAIT)
    with waits.waiting(f"the change lock (item {item_event_id})"):
        acquired = lock.acquire()
    if not acquired:
        raise LockTimeout(f"change lock busy for {LOCK_WAIT:.0f}s (item {item_event_id})")
    try:
        outcome = _process(redis, keys, log, workers, item_event_id, now or utcnow())
    finally:
        # An expired lock cannot be released; the work is recorded either way.
        with contextlib.suppress(LockError):
            lock.release()
    metrics.incr(redis, keys, "changes_processed", outcome=outcome.split(":")[0])
    return outcome


def _process(
    redis: Redis, keys: Keys, log: EventLog, workers: WorkerSettings, item_id: str, now: str
) -> str:
    item = log.get(item_id)
    if item is None:
        raise EventError(f"{item_id}: no such event in the log")
    if item.type not in ITEM_TYPES:
        raise EventError(f"{item_id}: a {item.type}, not an item event")
    previous = _decision(log, item_id)
    if previous is not None:
        # A re-run: the decision is in the log; make sure it is applied, decide nothing.
        _apply(redis, keys, [previous, *(e for e in map(log.get, previous.data["follow"]) if e)])
        return "done"
    apply(redis, keys, item)
    batch = decide(redis, keys, item, workers, now)
    log.append_many(batch)
    _apply(redis, keys, [e for e, _ in batch])
    decision = batch[0][0]
    return "started" if decision.type == "story.started" else f"merged:{decision.data['level']}"


def _decision(log: EventLog, item_id: str) -> Event | None:
    for kind in ("story.started", "story.merged"):
        found = log.get(event_id(kind, item_id))
        if found is not None:
            return found
    return None


def _apply(redis: Redis, keys: Keys, events: list[Event]) -> None:
    for event in events:
        apply(redis, keys, event)


def decide(
    redis: Redis, keys: Keys, item: Event, workers: WorkerSettings, now: str
) -> list[tuple[Event, list[Job]]]:
    """The events recording what ``item`` means, decision first, with their jobs."""
    d = item.data
    seen = epoch(item.at)
    published = epoch(d.get("published")) or seen
    dated = bool(epoch(d.get("published")))
    asof = min(published, seen)  # a pubDate in the future is a typo, not a promise
    quiet = bool(d.get("baseline")) or seen - published > workers.max_age_days * DAY
    match = dedupe.find(redis, keys, d, seen, workers.window_days)
    story = match.story if match else "st_" + digest(item.id, 24)
    evidence = {"url": d.get("url"), "title": d.get("title"), "publisher": d.get("source"),
                "lang": d.get("lang")}  # fmt: skip

    follow: list[tuple[Event, list[Job]]] = []
    changes = fold(
        state.status(redis, keys), state.pricing(redis, keys), state.partners(redis, keys),
        d.get("facts"), asof, dated,
    )  # fmt: skip
    generations: dict[str, int] = {}
    for change in changes:
        gen = generations.setdefault(change.topic, state.generation(redis, keys, change.topic))
        generations[change.topic] = gen + 1
        data = {
            "topic": change.topic, "before": change.before, "after": change.after,
            "since": iso(asof), "dated": dated, "evidence": evidence, "story": story, "item_event": item.id,
            "baseline": quiet,
        }  # fmt: skip
        follow.append((Event.new("state.changed", data, change.topic, gen, change.signature), []))
        if not quiet:
            identity = [change.topic, "change", *change.signature, gen]
            follow.append(_alert(redis, keys, item, story, change.topic, "change", identity,
                                 change.before, change.after, now))  # fmt: skip

    if match is None and not quiet:
        sigs = signatures(d.get("facts"))
        for topic in _topics(d):
            signature = "+".join(sigs[topic])
            if signature and _told(redis, keys, topic, signature, seen, workers.window_days):
                continue
            identity = [topic, "news", signature, story]
            after = _news_value(topic, d.get("facts") or {})
            follow.append(_alert(redis, keys, item, story, topic, "news", identity, None, after,
                                 now, signature=signature))  # fmt: skip

    decision_data = {
        "item_event": item.id, "story": story, "level": match.level if match else None,
        "lang": d.get("lang"), "title": d.get("title"), "summary": d.get("summary"),
        "url": d.get("url"), "item_key": d.get("item_key"), "source": d.get("source"),
        "published": d.get("published"), "seen_at": item.at, "topics": d.get("topics") or [],
        "facts": d.get("facts") or {}, "baseline": quiet, "evidence": evidence,
        "follow": [e.id for e, _ in follow],
    }  # fmt: skip
    kind = "story.merged" if match else "story.started"
    return [(Event.new(kind, decision_data, item.id), []), *follow]


def _topics(d: dict[str, Any]) -> list[str]:
    """The item's topics, plus any topic it asserts facts for, in canonical order."""
    sigs = signatures(d.get("facts"))
    named = set(d.get("topics") or []) | {t for t, s in sigs.items() if s}
    return [t for t in ("status", "pricing", "partnership") if t in named]


def _told(redis: Redis, keys: Keys, topic: str, signature: str, seen: float, days: int) -> bool:
    """Was a news alert for this topic and fact signature raised within the window?"""
    lo, hi = seen - days * DAY, seen + days * DAY
    return bool(redis.zcount(alerts.news_key(keys, topic, signature), lo, hi))


def _news_value(topic: str, facts: dict[str, Any]) -> dict[str, Any] | None:
    if topic == "status" and facts.get("status"):
        return {"value": facts["status"], "version": facts.get("version")}
    if topic == "pricing" and facts.get("pricing"):
        plan = facts["pricing"][0]
        return {k: plan.get(k) for k in ("plan", "amount", "currency", "period")}
    if topic == "partnership" and facts.get("partners"):
        return {"partner": facts["partners"][0]}
    return None


def _alert(
    redis: Redis,
    keys: Keys,
    item: Event,
    story: str,
    topic: str,
    kind: str,
    identity: list[Any],
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    now: str,
    signature: str | None = None,
) -> tuple[Event, list[Job]]:
    d = item.data
    source = {"url": d.get("url"), "title": d.get("title"), "publisher": d.get("source"),
              "lang": d.get("lang"), "published": d.get("published")}  # fmt: skip
    earlier = (stories.get(redis, keys, story) or {}).get("sources") or []
    sources = [
        {k: s.get(k) for k in ("url", "title", "publisher", "lang", "published")}
        for s in earlier
        if s.get("url") != source["url"]
    ]
    # The alert id is the alert.raised event id's hash: both derive from the identity.
    alert_id = "al_" + event_id("alert.raised", *identity).split(":", 1)[1][:24]
    data: dict[str, Any] = {
        "alert_id": alert_id, "topic": topic, "kind": kind, "before": before, "after": after,
        "facts": d.get("facts") or {}, "title": d.get("title"), "title_lang": d.get("lang"),
        "summary": d.get("summary"), "sources": [source, *sources], "story": story,
        "raised_at": now, "baseline": False,
    }  # fmt: skip
    if signature is not None:
        data["signature"] = signature
    event = Event.new("alert.raised", data, *identity, at=now)
    return event, [Job.for_event("changes", "workers.fanout.fan_out", event)]

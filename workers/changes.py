"""Processing one item event: dedupe, fold facts into the state, raise alerts.

``process`` is what the ``changes`` queue runs for every ``item.seen`` /
``item.revised``. Under a short Redis lock (one change decision at a time, across
workers) it:

1. files the item under a story: a new one (``story.started``) or an earlier one
   (``story.merged`` with ``level`` item|story|event, see ``sorawatch.workers.dedupe``);
2. folds the changes its claims propose into the state (``sorawatch.workers.state.fold``):
   each is confirmed (``state.changed``) or, until a first-party source or a second
   independent publisher says it too, only reported (``change.reported``); see
   ``sorawatch.workers.corroborate``;
3. raises alerts, each an ``alert.raised`` event appended with its fan-out job:
   - ``story``: the first message about a story, carrying every confirmed change
     it brings (mail and webhooks); its subject names the most important change;
   - ``update``: at most one more per story, when a later copy confirms or adds a
     change;
   - ``change``: one typed webhook message per confirmed change;
   - ``early``: a story's first unconfirmed report, for subscribers who asked.
   A later copy that confirms nothing new raises nothing: it is a source.

All of these are appended in one transaction, then applied to the projections
in log order, still under the lock: the story index and the state the next item
sees already hold this one. The decision event lists the events that went with
it (``follow``), so a re-run of the job (RQ is at-least-once) re-applies them
instead of deciding again.

Quiet items fold into state and the story index but raise nothing: baseline
items (a feed's first poll), and items published more than
``settings.workers.max_age_days`` before they were first seen (a backlog entry,
or an old article newly in a feed, is evidence, not news). A report older than
the state it would replace never changes it (see ``sorawatch.workers.state``).
"""

from __future__ import annotations

import contextlib
from typing import Any

from redis import Redis
from redis.exceptions import LockError

from sorawatch import jobs, metrics
from sorawatch.errors import EventError, SorawatchError
from sorawatch.event_data import (
    AlertRaised,
    ChangeReported,
    Evidence,
    ItemSeen,
    Source,
    StateChanged,
    StoryFiled,
    StoryMerged,
    Told,
)
from sorawatch.events import Event, EventLog, Job, event_id, utcnow
from sorawatch.keys import Keys, digest
from sorawatch.projections import alerts, apply, state, stories
from sorawatch.projections._common import epoch, iso
from sorawatch.projections.state import norm, plan_key
from sorawatch.settings import WorkerSettings
from sorawatch.workers import dedupe, waits
from sorawatch.workers.corroborate import Report, confirmed_by
from sorawatch.workers.state import Change, Snapshot, fold

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
        # The item too: Redis may have kept the decision but lost the item's own
        # projection writes (appendfsync everysec), and replay would then differ.
        follow = previous.data_as(StoryFiled)["follow"]
        _apply(redis, keys, [item, previous, *(e for e in map(log.get, follow) if e)])
        return "done"
    apply(redis, keys, item)
    batch = decide(redis, keys, item, workers, now)
    log.append_many(batch)
    _apply(redis, keys, [e for e, _ in batch])
    decision = batch[0][0]
    if decision.type == "story.started":
        return "started"
    return f"merged:{decision.data_as(StoryMerged)['level']}"


def _decision(log: EventLog, item_id: str) -> Event | None:
    for kind in ("story.started", "story.merged"):
        found = log.get(event_id(kind, item_id))
        if found is not None:
            return found
    return None


def _apply(redis: Redis, keys: Keys, events: list[Event]) -> None:
    for event in events:
        apply(redis, keys, event)


def snapshot(redis: Redis, keys: Keys) -> Snapshot:
    """The state a decision reads, from the state projection."""
    return Snapshot(
        lines=state.lines(redis, keys),
        plans={plan_key(p): p for p in state.pricing(redis, keys)},
        partners={norm(p.get("name")): p for p in state.partners(redis, keys)},
    )


def decide(
    redis: Redis, keys: Keys, item: Event, workers: WorkerSettings, now: str
) -> list[tuple[Event, list[Job]]]:
    """The events recording what ``item`` means, decision first, with their jobs.

    Judgement happens here and in the pure rules it calls (`sorawatch.workers.state.fold`,
    `sorawatch.workers.corroborate.confirmed_by`); Redis is only read.
    """
    d = item.data_as(ItemSeen)  # or ItemRevised, which only adds previous_hash
    seen = epoch(item.at)
    published = epoch(d.get("published")) or seen
    dated = bool(epoch(d.get("published")))
    asof = min(published, seen)  # a pubDate in the future is a typo, not a promise
    quiet = bool(d.get("baseline")) or seen - published > workers.max_age_days * DAY
    match = dedupe.find(redis, keys, d, seen, workers.window_days)
    story = match.story if match else "st_" + digest(item.id, 24)
    evidence: Evidence = {
        "url": d.get("url"), "title": d.get("title"), "publisher": d.get("source"),
        "lang": d.get("lang"), "at": item.at,
    }  # fmt: skip
    facts = d.get("facts") or {}
    report = Report(
        publisher=d.get("source"), official=bool(d.get("official")), story=story,
        level=match.level if match else None, at=seen, headline=bool(facts.get("headline")),
    )  # fmt: skip

    follow: list[tuple[Event, list[Job]]] = []
    confirmed: dict[str, list[Told]] = {}  # alert story → its confirmed changes
    reported: list[Change] = []
    generations: dict[str, int] = {}
    for change in fold(snapshot(redis, keys), facts, asof, dated):
        earlier = _fresh(state.reports_of(redis, keys, change.claim), seen, workers.window_days)
        by = confirmed_by(report, earlier, workers.window_days, workers.confirm_headline)
        if by is None:
            reported.append(change)
            follow.append((_reported(change, report, evidence, item), []))
            continue
        gen = generations.setdefault(change.topic, state.generation(redis, keys, change.topic))
        generations[change.topic] = gen + 1
        first_story = str((earlier or {}).get("story") or story)
        proof = [r["evidence"] for r in (earlier or {}).get("reports") or [] if r.get("evidence")]
        data: StateChanged = {
            "topic": change.topic, "key": change.key, "before": change.before,
            "after": change.after, "since": iso(asof), "dated": dated, "evidence": evidence,
            "evidence_all": [*proof, evidence], "confirmed_by": by, "claims": [change.claim],
            "story": first_story, "item_event": item.id, "baseline": quiet,
        }  # fmt: skip
        follow.append((Event.new("state.changed", data, change.topic, gen, change.signature), []))
        if not quiet:
            told: Told = {"topic": change.topic, "key": change.key, "before": change.before,
                    "after": change.after, "confirmed_by": by}  # fmt: skip
            confirmed.setdefault(first_story, []).append(told)
            identity = ["change", *change.signature, gen]
            follow.append(_alert(redis, keys, item, first_story, "change", identity, [told], now,
                                 want={"webhook": "change"}))  # fmt: skip

    for alert_story, changes in confirmed.items():
        raised = alerts.of_story(redis, keys, alert_story)
        kind = "story" if "story" not in raised else "update" if "update" not in raised else None
        if kind is not None:  # one first report and at most one update per story
            follow.append(_alert(redis, keys, item, alert_story, kind, [kind, alert_story],
                                 changes, now, want={"email": "change", "webhook": "news"}))  # fmt: skip
    if reported and not quiet and not confirmed:
        raised = alerts.of_story(redis, keys, story)
        if not raised:  # early subscribers hear of a story's first unconfirmed report
            told_early: list[Told] = [
                {"topic": c.topic, "key": c.key, "before": c.before, "after": c.after,
                 "confirmed_by": None} for c in reported
            ]  # fmt: skip
            follow.append(_alert(redis, keys, item, story, "early", ["early", story],
                                 told_early, now, want={"email": "early"}))  # fmt: skip

    decision_data = {
        "item_event": item.id, "story": story, "level": match.level if match else None,
        "lang": d.get("lang"), "title": d.get("title"), "summary": d.get("summary"),
        "url": d.get("url"), "item_key": d.get("item_key"), "source": d.get("source"),
        "published": d.get("published"), "seen_at": item.at, "topics": d.get("topics") or [],
        "facts": facts, "baseline": quiet, "evidence": evidence,
        "follow": [e.id for e, _ in follow],
    }  # fmt: skip
    kind = "story.merged" if match else "story.started"
    return [(Event.new(kind, decision_data, item.id), []), *follow]


def _fresh(earlier: dict[str, Any] | None, seen: float, days: int) -> dict[str, Any] | None:
    """The reports of a claim still within the window: an old unconfirmed report (a false
    lead months ago) neither confirms a change nor gives it its story."""
    if earlier is None:
        return None
    reports = [r for r in earlier.get("reports") or [] if seen - epoch(r.get("at")) <= days * DAY]
    if not reports:
        return None
    return {**earlier, "reports": reports, "story": reports[0].get("story") or earlier.get("story")}


def _reported(change: Change, report: Report, evidence: Evidence, item: Event) -> Event:
    data: ChangeReported = {
        "claim": change.claim, "topic": change.topic, "key": change.key,
        "before": change.before, "after": change.after, "since": item.at,
        "publisher": report.publisher, "story": report.story, "item_event": item.id,
        "evidence": evidence,
    }  # fmt: skip
    return Event.new("change.reported", data, change.claim, item.id)


# The order in which a story's changes are told: its subject names the first.
_WEIGHT = {"status": 0, "pricing": 1, "partnership": 2}


def _alert(
    redis: Redis,
    keys: Keys,
    item: Event,
    story: str,
    kind: str,
    identity: list[Any],
    changes: list[Told],
    now: str,
    want: dict[str, str],
) -> tuple[Event, list[Job]]:
    """An ``alert.raised`` event about ``story`` telling ``changes``, with its fan-out job.

    ``want`` says which channels it goes to and the subscription kind each channel's
    recipients must want (``change``, ``news``, ``early``).
    """
    d = item.data_as(ItemSeen)
    source: Source = {"url": d.get("url"), "title": d.get("title"), "publisher": d.get("source"),
                      "lang": d.get("lang"), "published": d.get("published")}  # fmt: skip
    record = stories.get(redis, keys, story) or {}
    earlier = record.get("sources") or []
    sources = [
        Source(
            url=s.get("url"),
            title=s.get("title"),
            publisher=s.get("publisher"),
            lang=s.get("lang"),
            published=s.get("published"),
        )
        for s in earlier
        if s.get("url") != source["url"]
    ]
    ordered = sorted(changes, key=lambda c: _WEIGHT.get(c["topic"], 9))
    main = ordered[0]
    # The alert id is the alert.raised event id's hash: both derive from the identity.
    alert_id = "al_" + event_id("alert.raised", *identity).split(":", 1)[1][:24]
    first = record or {"title": d.get("title"), "lang": d.get("lang"), "summary": d.get("summary")}
    data: AlertRaised = {
        "alert_id": alert_id, "topic": main["topic"], "kind": kind,
        "topics": list(dict.fromkeys(c["topic"] for c in ordered)),
        "before": main["before"], "after": main["after"], "changes": ordered,
        "confirmed": kind != "early", "want": want,
        "facts": d.get("facts") or {}, "title": first.get("title"),
        "title_lang": first.get("lang"), "summary": first.get("summary"),
        "sources": [*sources, source] if record else [source], "story": story,
        "raised_at": now, "baseline": False,
    }  # fmt: skip
    event = Event.new("alert.raised", data, *identity, at=now)
    return event, [Job.for_event(jobs.CHANGES, jobs.FAN_OUT, event)]

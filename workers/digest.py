"""Digests: a subscriber's stories of one period in one mail, and the daily cap.

A **digest subscriber** (cadence ``daily`` or ``weekly``) gets no mail from fan-out
(the fan-out index holds instant subscribers only). At each of their boundaries
(their hour, in their time zone; Mondays for weekly) the **tick** puts their digest
on the ``email`` queue. The digest gathers the alerts raised in their period, from
the end of the last digest done for them (or from when their cadence began) to
the boundary, that they want by topic and kind. A period with nothing in it sends
nothing.

An **instant subscriber** gets at most ``max_per_day`` alerts a day (their
calendar day; 0: no cap). Past it, an alert is *held*; the held alerts go out in
one catch-up digest at their hour ("4 more updates").

Exactly once: a digest's id is ``digest-<boundary>``; its batches are ordinary
``email`` deliveries through the ledger, keyed by (digest id, subscriber), with the
sent marks, retries and dead letters of any alert, so a worker killed mid-batch
re-runs it and sends nobody a digest twice. ``sorawatch.workers.email.deliver_email`` takes
a digest id as well as an alert id.

The tick runs in every worker process group (``sorawatch work``: each 30 s), at
the start of a burst (``work --burst``), and from ``sorawatch digest --now``. A lease
lets one process at a time enqueue; the job ids derive from the digest and its
recipients, and the ledger skips who was done, so a second tick changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis import Redis

from sorawatch import clock, jobs, metrics, render, schedule
from sorawatch.events import EventLog, job_id
from sorawatch.keys import Keys, digest
from sorawatch.projections import alerts, subscribers
from sorawatch.projections._common import epoch, text
from sorawatch.projections.subscribers import Subscriber
from sorawatch.settings import Settings
from sorawatch.workers.fanout import chunks, wanted
from sorawatch.workers.retry import enqueue_delivery

log = logging.getLogger(__name__)

PREFIX = "digest-"
TICK_LEASE = 60  # seconds; a tick takes milliseconds, this only frees a dead one's lease
PAGE = 1000
_FORMAT = "%Y%m%dT%H%M%SZ"


def digest_id(end: datetime) -> str:
    """The id of the digests ending at ``end``: ``digest-20261204T050000Z``."""
    return PREFIX + end.astimezone(UTC).strftime(_FORMAT)


def is_digest(delivery_id: str) -> bool:
    return delivery_id.startswith(PREFIX)


def end_of(delivery_id: str) -> datetime:
    """The boundary a digest id names; raises ValueError for anything else."""
    return datetime.strptime(delivery_id.removeprefix(PREFIX), _FORMAT).replace(tzinfo=UTC)


# -- the daily cap ----------------------------------------------------------------


def hold_over_cap(
    redis: Redis, keys: Keys, alert: Mapping[str, Any], subs: Iterable[Subscriber]
) -> set[str]:
    """The instant subscribers for whom ``alert`` is past their daily cap, and hold it
    for their next catch-up digest; returns their addresses.

    Counted, not stored: an alert is past the cap when the subscriber already wanted
    ``max_per_day`` alerts raised earlier in the same calendar day (theirs, in their
    time zone) since they subscribed; an instant subscriber is mailed every alert
    they want, so those are the mails they got. Nothing per subscriber is kept to
    count, and a re-run batch counts the same."""
    capped = [s for s in subs if s.cadence == "instant" and s.max_per_day > 0]
    if not capped:
        return set()
    alert_id = str(alert["alert_id"])
    raised = epoch(alert.get("raised_at"))
    when = datetime.fromtimestamp(raised, UTC)
    starts = {
        tz: schedule.Schedule(tz=tz).day_start(when).timestamp() for tz in {s.tz for s in capped}
    }
    ids = alerts.raised_between(redis, keys, min(starts.values()) - 1, raised)
    earlier = [
        a for a in alerts.get_many(redis, keys, ids)
        if (epoch(a.get("raised_at")), str(a["alert_id"])) < (raised, alert_id)
    ]  # fmt: skip
    held: set[str] = set()
    for sub in capped:
        since = max(starts[sub.tz], epoch(sub.cadence_since or sub.confirmed_at))
        told = sum(1 for a in earlier if epoch(a.get("raised_at")) >= since and wants(sub, a))
        if told >= sub.max_per_day:
            held.add(sub.email)
    if held:
        now = clock.now()
        with redis.pipeline(transaction=False) as pipe:
            for sub in capped:
                if sub.email in held:
                    due = sub.timing.next(when).timestamp()
                    pipe.zadd(keys.digest_held(sub.email), {alert_id: raised or now.timestamp()})
                    pipe.zadd(keys.digest_held_due(), {sub.email: due}, nx=True)
            metrics.incr(pipe, keys, "digest_held", len(held))
            pipe.execute()
    return held


# -- the tick ---------------------------------------------------------------------


def _due(redis: Redis, key: str, now: float) -> list[str]:
    found: list[str] = []
    start = 0
    while True:
        page = [text(e) for e in redis.zrangebyscore(key, "-inf", now, start=start, num=PAGE)]
        found += page
        if len(page) < PAGE:
            return found
        start += PAGE


def tick(log_: EventLog, settings: Settings) -> dict[str, int]:
    """Enqueue every digest due now (by the clock); returns how many subscribers and
    batches were enqueued. Does nothing while another process holds the lease."""
    redis, keys = log_.redis, log_.keys
    lease = keys.digest_tick()
    token = digest(clock.real_iso())
    if not redis.set(lease, token, nx=True, ex=TICK_LEASE):
        return {"subscribers": 0, "batches": 0}
    try:
        return _tick(redis, keys, settings)
    finally:
        if text(redis.get(lease) or b"") == token:
            redis.delete(lease)


def _tick(redis: Redis, keys: Keys, settings: Settings) -> dict[str, int]:
    now = clock.now()
    stamp = now.timestamp()
    scheduled = _due(redis, subscribers.digest_key(keys), stamp)
    catching_up = _due(redis, keys.digest_held_due(), stamp)
    found = subscribers.get_many(redis, keys, dict.fromkeys([*scheduled, *catching_up]))
    ends: dict[datetime, list[str]] = {}
    moves: dict[str, float] = {}
    gone: list[str] = []
    for email, sub in found.items():
        if sub is None or sub.status != "confirmed":
            gone.append(email)
            continue
        end = sub.timing.last(now)
        ends.setdefault(end, []).append(email)
        if sub.timing.digest:
            moves[email] = sub.timing.next(end).timestamp()
    batches = 0
    with redis.pipeline() as pipe:
        for end, emails in sorted(ends.items()):
            delivery = digest_id(end)
            for batch in chunks([sorted(emails)], settings.workers.batch_size):
                jid = job_id("email", delivery, digest(",".join(batch)))
                enqueue_delivery(
                    redis, settings, "email", jobs.DELIVER_EMAIL,
                    (delivery, batch, 0), jid, pipeline=pipe,
                )  # fmt: skip
                batches += 1
        if moves:
            pipe.zadd(subscribers.digest_key(keys), moves, xx=True)
        if catching_up:
            # The digest job puts a subscriber back if alerts are held after it ran.
            pipe.zrem(keys.digest_held_due(), *catching_up)
        if gone:
            pipe.zrem(subscribers.digest_key(keys), *gone)
        pipe.execute()
    if batches:
        log.info("digests: %d subscriber(s) in %d batch(es)", sum(map(len, ends.values())), batches)
    return {"subscribers": sum(len(e) for e in ends.values()), "batches": batches}


# -- what a digest holds ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Contents:
    """One subscriber's digest: the alerts it tells, and the held ones among them."""

    sub: Subscriber
    start: datetime
    end: datetime
    alerts: list[dict[str, Any]]
    held: list[str]

    @property
    def changes(self) -> list[dict[str, Any]]:
        """Alerts that tell a change of state, most recent first."""
        return [a for a in self.alerts if _tells_change(a)]

    def news(self) -> list[tuple[str, list[dict[str, Any]]]]:
        """The other alerts, by topic (the subscriber's topics, in canonical order)."""
        rest = [a for a in self.alerts if not _tells_change(a)]
        return [
            (topic, [a for a in rest if a.get("topic") == topic])
            for topic in self.sub.topics
            if any(a.get("topic") == topic for a in rest)
        ]


def _tells_change(alert: Mapping[str, Any]) -> bool:
    return alert.get("kind") in render.CHANGE_KINDS and bool(alert.get("after"))


def wants(sub: Subscriber, alert: Mapping[str, Any]) -> bool:
    """Whether ``sub`` hears of ``alert`` by mail at all (at once or in a digest)."""
    if alert.get("baseline"):
        return False
    kind = wanted(alert).get("email")
    topics = alert.get("topics") or [alert.get("topic")]
    return kind is not None and any(sub.wants(str(t), kind) for t in topics)


def gather(redis: Redis, keys: Keys, sub: Subscriber, end: datetime) -> Contents:
    """What ``sub``'s digest ending at ``end`` tells: for a digest subscriber, the
    alerts of their period they want; for anyone, the alerts held for them. One
    message per story: its latest alert (an update tells every change so far)."""
    held = [
        text(i) for i in redis.zrangebyscore(keys.digest_held(sub.email), "-inf", end.timestamp())
    ]
    ids = list(held)
    start = end
    if sub.timing.digest:
        last = redis.hget(keys.digest_sent(), sub.email)
        began = epoch(sub.cadence_since or sub.confirmed_at)
        since = max(float(text(last)) if last else 0.0, began, end.timestamp() - 366 * 86400)
        start = datetime.fromtimestamp(since, UTC)
        ids += alerts.raised_between(redis, keys, since, end.timestamp())
    found = alerts.get_many(redis, keys, list(dict.fromkeys(ids)))
    latest: dict[str, dict[str, Any]] = {}
    for alert in sorted(found, key=lambda a: epoch(a.get("raised_at"))):
        if alert.get("alert_id") in held or wants(sub, alert):
            latest[str(alert.get("story") or alert["alert_id"])] = alert
    told = sorted(latest.values(), key=lambda a: epoch(a.get("raised_at")), reverse=True)
    return Contents(sub, start, end, told, held)


def done(redis: Redis, keys: Keys, contents: Contents) -> None:
    """After a subscriber's digest went out (or had nothing to tell): the period is
    done and the held alerts it told are no longer held. Alerts held since the digest
    was gathered stay, and their subscriber goes back on the catch-up schedule."""
    email = contents.sub.email
    with redis.pipeline() as pipe:
        pipe.hset(keys.digest_sent(), email, str(contents.end.timestamp()))
        if contents.held:
            pipe.zrem(keys.digest_held(email), *contents.held)
        pipe.execute()
    if redis.zcard(keys.digest_held(email)):
        due = contents.sub.timing.next(clock.now()).timestamp()
        redis.zadd(keys.digest_held_due(), {email: due}, nx=True)


# -- how it reads -----------------------------------------------------------------


def subject(contents: Contents, langs: Sequence[str]) -> str:
    """The digest's subject in each language ("Sora daily digest, 4 December 2026:
    3 updates"; a catch-up: "Sora: 4 more updates from 3 December 2026")."""
    timing = contents.sub.timing
    n = len(contents.alerts)
    parts = []
    for lang in langs:
        if timing.digest:
            day = render.format_day(contents.end, timing.tz, lang)
            count = render.format_count("digest.updates", n, lang)
            line = render.phrase(f"subject.digest_{timing.cadence}", lang, date=day, count=count)
        else:
            day = render.format_day(_first_held(contents), timing.tz, lang)
            count = render.format_count("digest.more", n, lang)
            line = render.phrase("subject.digest_more", lang, date=day, count=count)
        parts.append(render.line(line, lang))  # an Arabic part: one right-to-left block
    return " | ".join(parts)


def _first_held(contents: Contents) -> datetime:
    stamps = [epoch(a.get("raised_at")) for a in contents.alerts]
    return datetime.fromtimestamp(min(stamps), UTC) if stamps else contents.end


def context(contents: Contents, langs: Sequence[str], public_url: str) -> dict[str, Any]:
    """What the digest templates read."""
    timing = contents.sub.timing
    return {
        "langs": tuple(langs),
        "public_url": public_url,
        "changes": contents.changes,
        "news": contents.news(),
        "catch_up": not timing.digest,
        "cap": timing.max_per_day,
        "tz": timing.tz,
        "start": contents.start,
        "end": contents.end,
        "count": len(contents.alerts),
    }

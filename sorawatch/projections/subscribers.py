"""Email subscribers: written as ``subscriber.*`` events, read from a projection.

Keys under ``keys.projection("subscribers")``: ``:s:<email>`` (the record as JSON),
``:all`` and ``:status:<status>`` (sorted sets by email, for paging), and
``:want:<topic>:<kind>`` (confirmed subscribers who want that topic and kind, a
sorted set paged by email so fan-out to 100,000 never holds them all in memory).

A request from the subscribe form stays **outside the log until it is confirmed**:
one key (``keys.pending``) that expires after ``web.pending_ttl`` (48 h). Anyone
can type any address into the form, so an unconfirmed request is the word of a
stranger: it must not grow the log for ever, and the log cannot forget (events
are immutable; compacting it would mean rewriting the source of truth and every
replay after). On confirmation, ``subscriber.requested`` and
``subscriber.confirmed`` are appended together, carrying the request's original
choices and time, so a replay still rebuilds every subscriber. Logs written
before this kept pending requests as events; they replay as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from redis import Redis

from sorawatch import schedule
from sorawatch.event_data import (
    SubscriberConfirmed,
    SubscriberRequested,
    SubscriberTokensRevoked,
    SubscriberUnsubscribed,
    SubscriberUpdated,
)
from sorawatch.events import Event
from sorawatch.keys import Keys
from sorawatch.projections import handles
from sorawatch.projections._common import (
    KINDS,
    TOPICS,
    dumps,
    epoch,
    loads,
    text,
)
from sorawatch.vocabulary import SUBSCRIBER_STATUSES

SCHEDULE_FIELDS = ("cadence", "tz", "hour", "max_per_day", "cadence_since")


@dataclass(frozen=True, slots=True)
class Subscriber:
    email: str
    lang: str
    topics: tuple[str, ...]
    kinds: tuple[str, ...]
    status: str
    requested_at: str
    confirmed_at: str | None = None
    # Links (unsubscribe, preferences, confirm) signed before this are refused.
    tokens_after: str | None = None
    cadence: str = "instant"
    tz: str = schedule.DEFAULT_TZ
    hour: int = schedule.DEFAULT_HOUR
    max_per_day: int = schedule.DEFAULT_MAX_PER_DAY
    # Since when the cadence holds: a digest never repeats what went out at once before.
    cadence_since: str | None = None

    def wants(self, topic: str, kind: str) -> bool:
        """Whether this subscriber hears of such an alert at all (now or in a digest)."""
        return self.status == "confirmed" and topic in self.topics and kind in self.kinds

    def wants_now(self, topic: str, kind: str) -> bool:
        """Whether fan-out mails such an alert to this subscriber at once."""
        return self.cadence == "instant" and self.wants(topic, kind)

    @property
    def timing(self) -> schedule.Schedule:
        """When this subscriber hears: cadence, time zone, hour, daily cap."""
        return schedule.of(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Subscriber:
        return cls(
            email=raw["email"],
            lang=raw["lang"],
            topics=tuple(raw["topics"]),
            kinds=tuple(raw["kinds"]),
            status=raw["status"],
            requested_at=raw["requested_at"],
            confirmed_at=raw.get("confirmed_at"),
            tokens_after=raw.get("tokens_after"),
            **{k: raw[k] for k in SCHEDULE_FIELDS if k in raw},
        )


def _ns(keys: Keys) -> str:
    return keys.projection("subscribers")


def record_key(keys: Keys, email: str) -> str:
    """Where the subscriber record of ``email`` (any status but a pending request) lives."""
    return f"{_ns(keys)}:s:{email}"


def digest_key(keys: Keys) -> str:
    """Digest subscribers (confirmed, daily or weekly) → when their next digest is due
    (epoch seconds); the digest tick moves each on as it enqueues their digest."""
    return f"{_ns(keys)}:digest"


# -- reads ------------------------------------------------------------------------


def get(redis: Redis, keys: Keys, email: str) -> Subscriber | None:
    """The subscriber with this address (any status), or None.

    A confirmed subscriber first; else an unconfirmed request that has not expired
    (status ``pending``); else what the log says (unsubscribed, or an old pending)."""
    address = (email or "").strip().lower()
    rec, pend = redis.mget([f"{_ns(keys)}:s:{address}", keys.pending(address)])
    raw = loads(rec)
    if raw and raw.get("status") == "confirmed":
        return Subscriber.from_dict(raw)
    asked = loads(pend)
    if asked:
        return Subscriber.from_dict({**asked, "status": "pending"})
    return Subscriber.from_dict(raw) if raw else None


def get_many(redis: Redis, keys: Keys, emails: Iterable[str]) -> dict[str, Subscriber | None]:
    """The subscribers with these addresses (None for unknown ones), in one round trip."""
    wanted = [(e or "").strip().lower() for e in emails]
    if not wanted:
        return {}
    rows = redis.mget([f"{_ns(keys)}:s:{e}" for e in wanted])
    out: dict[str, Subscriber | None] = {}
    for email, raw in zip(wanted, rows, strict=True):
        record = loads(raw)
        out[email] = Subscriber.from_dict(record) if record else None
    return out


def list_all(
    redis: Redis, keys: Keys, status: str | None = None, offset: int = 0, limit: int = 100
) -> list[Subscriber]:
    """Subscribers ordered by address, optionally of one status."""
    index = f"{_ns(keys)}:status:{status}" if status else f"{_ns(keys)}:all"
    emails = [text(e) for e in redis.zrange(index, offset, offset + max(limit, 0) - 1)]
    if not emails:
        return []
    rows = redis.mget([f"{_ns(keys)}:s:{e}" for e in emails])
    return [Subscriber.from_dict(loads(r)) for r in rows if r is not None]


def count(redis: Redis, keys: Keys, status: str | None = None) -> int:
    """How many subscribers (of one status, or all)."""
    index = f"{_ns(keys)}:status:{status}" if status else f"{_ns(keys)}:all"
    return int(redis.zcard(index))


def matching(
    redis: Redis, keys: Keys, topic: str, kind: str, page: int = 500
) -> Iterator[list[str]]:
    """Confirmed subscribers who want ``topic`` and ``kind``, in pages of addresses.

    Pages by address (ZRANGEBYLEX from the last one seen), so a subscriber who joins
    or leaves mid-iteration never shifts the pages and none is given twice.
    """
    index = f"{_ns(keys)}:want:{topic}:{kind}"
    start = "-"
    while True:
        batch = [text(e) for e in redis.zrangebylex(index, start, "+", 0, page)]
        if not batch:
            return
        yield batch
        if len(batch) < page:
            return
        start = f"({batch[-1]}"


# -- projection -------------------------------------------------------------------


def _store(redis: Redis, keys: Keys, old: Subscriber | None, new: Subscriber) -> None:
    ns = _ns(keys)
    with redis.pipeline() as pipe:
        pipe.set(f"{ns}:s:{new.email}", dumps(new.to_dict()))
        pipe.zadd(f"{ns}:all", {new.email: 0})
        for status in SUBSCRIBER_STATUSES:
            if status != new.status:
                pipe.zrem(f"{ns}:status:{status}", new.email)
        pipe.zadd(f"{ns}:status:{new.status}", {new.email: 0})
        for topic in TOPICS:
            for kind in KINDS:
                want = f"{ns}:want:{topic}:{kind}"
                if new.wants_now(topic, kind):
                    pipe.zadd(want, {new.email: 0})
                elif old is None or old.wants_now(topic, kind):
                    pipe.zrem(want, new.email)
        since = new.cadence_since or new.confirmed_at
        if new.status == "confirmed" and new.timing.digest and since:
            first = new.timing.next(datetime.fromtimestamp(epoch(since), UTC))
            pipe.zadd(digest_key(keys), {new.email: first.timestamp()})
        else:
            pipe.zrem(digest_key(keys), new.email)
        pipe.execute()


def _timing(d: Mapping[str, Any]) -> dict[str, Any]:
    """The schedule an event's data carries: ``cadence``, ``tz``, ``hour``,
    ``max_per_day``, each only when given (older events carry none)."""
    return {k: d[k] for k in SCHEDULE_FIELDS[:-1] if k in d}


@handles("subscriber.requested")
def _on_requested(redis: Redis, keys: Keys, event: Event) -> None:
    d = event.data_as(SubscriberRequested)
    old = get(redis, keys, d["email"])
    confirmed = bool(d.get("confirmed"))
    new = Subscriber(
        email=d["email"],
        lang=d["lang"],
        topics=tuple(d["topics"]),
        kinds=tuple(d["kinds"]),
        status="confirmed" if confirmed else "pending",
        requested_at=d.get("requested_at") or event.at,
        confirmed_at=(d.get("requested_at") or event.at) if confirmed else None,
        **_timing(d),
    )
    _store(redis, keys, old, new)


@handles("subscriber.confirmed")
def _on_confirmed(redis: Redis, keys: Keys, event: Event) -> None:
    d = event.data_as(SubscriberConfirmed)
    old = get(redis, keys, d["email"])
    if old is None or old.status == "unsubscribed":
        return
    at = d.get("confirmed_at") or event.at
    _store(redis, keys, old, _replace(old, status="confirmed", confirmed_at=at))


@handles("subscriber.unsubscribed")
def _on_unsubscribed(redis: Redis, keys: Keys, event: Event) -> None:
    old = get(redis, keys, event.data_as(SubscriberUnsubscribed)["email"])
    if old is None:
        return
    _store(redis, keys, old, _replace(old, status="unsubscribed"))


@handles("subscriber.updated")
def _on_updated(redis: Redis, keys: Keys, event: Event) -> None:
    d = event.data_as(SubscriberUpdated)
    old = get(redis, keys, d["email"])
    if old is None:
        return
    changes: dict[str, Any] = {}
    if "lang" in d:
        changes["lang"] = d["lang"]
    if "topics" in d:
        changes["topics"] = tuple(d["topics"])
    if "kinds" in d:
        changes["kinds"] = tuple(d["kinds"])
    changes.update(_timing(d))
    if changes.get("cadence", old.cadence) != old.cadence:
        changes["cadence_since"] = event.at
    _store(redis, keys, old, _replace(old, **changes))


def _replace(sub: Subscriber, **changes: Any) -> Subscriber:
    return Subscriber.from_dict({**sub.to_dict(), **changes})


@handles("subscriber.tokens_revoked")
def _on_tokens_revoked(redis: Redis, keys: Keys, event: Event) -> None:
    d = event.data_as(SubscriberTokensRevoked)
    old = get(redis, keys, d["email"])
    if old is None or old.status == "pending":
        return
    _store(redis, keys, old, _replace(old, tokens_after=d["revoked_at"]))

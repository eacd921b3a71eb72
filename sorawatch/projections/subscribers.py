"""Email subscribers: written as ``subscriber.*`` events, read from a projection.

Keys under ``keys.projection("subscribers")``: ``:s:<email>`` (the record as JSON),
``:all`` and ``:status:<status>`` (sorted sets by email, for paging), and
``:want:<topic>:<kind>`` (confirmed subscribers who want that topic and kind, a
sorted set paged by email so fan-out to 100,000 never holds them all in memory).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from redis import Redis

from sorawatch import clock
from sorawatch.errors import ValidationError
from sorawatch.events import Event, EventLog, utcnow
from sorawatch.keys import Keys
from sorawatch.projections import apply, handles
from sorawatch.projections._common import (
    DEFAULT_KINDS,
    KINDS,
    TOPICS,
    choose,
    choose_lang,
    dumps,
    loads,
    text,
)

STATUSES = ("pending", "confirmed", "unsubscribed")

# Deliberately simple: one @, a dotted domain, no spaces or control characters (SMTP
# refuses those in every RCPT); the confirmation mail is the real test of an address.
_EMAIL = re.compile(
    r"^[^@\s<>,;\"\x00-\x1f\x7f]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?\.[A-Za-z]{2,63}$"
)


@dataclass(frozen=True, slots=True)
class Subscriber:
    email: str
    lang: str
    topics: tuple[str, ...]
    kinds: tuple[str, ...]
    status: str
    requested_at: str
    confirmed_at: str | None = None

    def wants(self, topic: str, kind: str) -> bool:
        return self.status == "confirmed" and topic in self.topics and kind in self.kinds

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
        )


def normalize_email(email: str) -> str:
    """The address trimmed and lower-cased; raises ValidationError when it is not one."""
    value = (email or "").strip().lower()
    if len(value) > 254 or not _EMAIL.match(value) or ".." in value:
        raise ValidationError(f"email {email!r}: not a valid address")
    return value


def _ns(keys: Keys) -> str:
    return keys.projection("subscribers")


# -- reads ------------------------------------------------------------------------


def get(redis: Redis, keys: Keys, email: str) -> Subscriber | None:
    """The subscriber with this address (any status), or None."""
    raw = loads(redis.get(f"{_ns(keys)}:s:{(email or '').strip().lower()}"))
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


# -- writes -----------------------------------------------------------------------


def request(
    log: EventLog,
    email: str,
    lang: str,
    topics: Iterable[str] | str | None,
    kinds: Iterable[str] | str | None = None,
    confirmed: bool = False,
) -> Subscriber:
    """Ask for alerts: a pending subscriber (or confirmed, when ``confirmed``).

    A confirmed subscriber who asks again without ``confirmed`` is left as is (anyone
    can type an address into the form; only its owner may change it, through the
    preferences link). Raises ValidationError for a bad address, language, topic or
    kind, before anything is written. Appends ``subscriber.requested``.
    """
    address = normalize_email(email)
    lang_ = choose_lang(lang)
    topics_ = choose(topics, TOPICS, "topic")
    kinds_ = choose(DEFAULT_KINDS if kinds is None else kinds, KINDS, "kind")
    existing = get(log.redis, log.keys, address)
    if existing is not None and existing.status == "confirmed" and not confirmed:
        return existing
    now = utcnow()
    data = {
        "email": address, "lang": lang_, "topics": list(topics_), "kinds": list(kinds_),
        "confirmed": bool(confirmed), "requested_at": now,
    }  # fmt: skip
    # The timestamp is part of the identity: a re-subscribe is a new event.
    _write(log, Event.new("subscriber.requested", data, address, now, at=now))
    found = get(log.redis, log.keys, address)
    assert found is not None
    return found


def confirm(log: EventLog, email: str) -> Subscriber | None:
    """Complete the double opt-in. None for an unknown or unsubscribed address.

    Confirming twice is a no-op. Appends ``subscriber.confirmed``.
    """
    address = (email or "").strip().lower()
    sub = get(log.redis, log.keys, address)
    if sub is None or sub.status == "unsubscribed":
        return None
    if sub.status == "confirmed":
        return sub
    now = utcnow()
    event = Event.new(
        "subscriber.confirmed", {"email": address, "confirmed_at": now}, address, sub.requested_at
    )
    _write(log, event)
    return get(log.redis, log.keys, address)


def unsubscribe(log: EventLog, email: str) -> bool:
    """Stop all mail to the address; False when it was not subscribed.

    Appends ``subscriber.unsubscribed``.
    """
    address = (email or "").strip().lower()
    sub = get(log.redis, log.keys, address)
    if sub is None or sub.status == "unsubscribed":
        return False
    now = utcnow()
    event = Event.new(
        "subscriber.unsubscribed",
        {"email": address, "unsubscribed_at": now},
        address,
        sub.requested_at,
    )
    _write(log, event)
    return True


def update(
    log: EventLog,
    email: str,
    lang: str | None = None,
    topics: Iterable[str] | str | None = None,
    kinds: Iterable[str] | str | None = None,
) -> Subscriber | None:
    """Change a subscriber's preferences; None for an unknown or unsubscribed address.

    Raises ValidationError before writing anything. Appends ``subscriber.updated``.
    """
    address = (email or "").strip().lower()
    data: dict[str, Any] = {"email": address}
    if lang is not None:
        data["lang"] = choose_lang(lang)
    if topics is not None:
        data["topics"] = list(choose(topics, TOPICS, "topic"))
    if kinds is not None:
        data["kinds"] = list(choose(kinds, KINDS, "kind"))
    sub = get(log.redis, log.keys, address)
    if sub is None or sub.status == "unsubscribed":
        return None
    now = utcnow()
    _write(log, Event.new("subscriber.updated", data, address, clock.real_iso(), at=now))
    return get(log.redis, log.keys, address)


def _write(log: EventLog, event: Event) -> None:
    log.append(event)
    apply(log.redis, log.keys, event)


# -- projection -------------------------------------------------------------------


def _store(redis: Redis, keys: Keys, old: Subscriber | None, new: Subscriber) -> None:
    ns = _ns(keys)
    with redis.pipeline() as pipe:
        pipe.set(f"{ns}:s:{new.email}", dumps(new.to_dict()))
        pipe.zadd(f"{ns}:all", {new.email: 0})
        for status in STATUSES:
            if status != new.status:
                pipe.zrem(f"{ns}:status:{status}", new.email)
        pipe.zadd(f"{ns}:status:{new.status}", {new.email: 0})
        for topic in TOPICS:
            for kind in KINDS:
                want = f"{ns}:want:{topic}:{kind}"
                if new.wants(topic, kind):
                    pipe.zadd(want, {new.email: 0})
                elif old is None or old.wants(topic, kind):
                    pipe.zrem(want, new.email)
        pipe.execute()


@handles("subscriber.requested")
def _on_requested(redis: Redis, keys: Keys, event: Event) -> None:
    d = event.data
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
    )
    _store(redis, keys, old, new)


@handles("subscriber.confirmed")
def _on_confirmed(redis: Redis, keys: Keys, event: Event) -> None:
    old = get(redis, keys, event.data["email"])
    if old is None or old.status == "unsubscribed":
        return
    at = event.data.get("confirmed_at") or event.at
    _store(redis, keys, old, _replace(old, status="confirmed", confirmed_at=at))


@handles("subscriber.unsubscribed")
def _on_unsubscribed(redis: Redis, keys: Keys, event: Event) -> None:
    old = get(redis, keys, event.data["email"])
    if old is None:
        return
    _store(redis, keys, old, _replace(old, status="unsubscribed"))


@handles("subscriber.updated")
def _on_updated(redis: Redis, keys: Keys, event: Event) -> None:
    d = event.data
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
    _store(redis, keys, old, _replace(old, **changes))


def _replace(sub: Subscriber, **changes: Any) -> Subscriber:
    return Subscriber.from_dict({**sub.to_dict(), **changes})

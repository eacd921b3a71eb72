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

import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from redis import Redis

from sorawatch import clock, jobs, schedule
from sorawatch.errors import ValidationError
from sorawatch.event_data import (
    SubscriberConfirmed,
    SubscriberRequested,
    SubscriberTokensRevoked,
    SubscriberUnsubscribed,
    SubscriberUpdated,
)
from sorawatch.events import Event, EventLog, utcnow
from sorawatch.keys import Keys
from sorawatch.projections import apply, handles
from sorawatch.projections._common import (
    KINDS,
    TOPICS,
    choose,
    choose_lang,
    choose_request,
    dumps,
    epoch,
    loads,
    text,
)

STATUSES = ("pending", "confirmed", "unsubscribed")
_SCHEDULE = ("cadence", "tz", "hour", "max_per_day", "cadence_since")
CONFIRM_JOB = jobs.SEND_CONFIRMATION

# Deliberately simple: an ASCII local part (no spaces, controls or quoting: the mail
# goes out without SMTPUTF8), one @, a dotted domain in its ASCII (IDNA) form; the
# confirmation mail is the real test of an address.
_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}$")
_DOMAIN = re.compile(
    r"^[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?\.(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})$"
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
            **{k: raw[k] for k in _SCHEDULE if k in raw},
        )


def normalize_email(email: str) -> str:
    """The address trimmed and lower-cased, its domain in ASCII (IDNA); raises
    ValidationError when it is not one: a non-ASCII local part, a control, bidi or
    other format character (U+202E, zero-width space) anywhere, a bad domain."""
    raw = (email or "").strip()
    bad = ValidationError(f"email {email!r}: not a valid address")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in raw):
        raise bad
    local, at, domain = raw.rpartition("@")
    if not at or not _LOCAL.match(local) or ".." in local:
        raise bad
    try:
        domain = domain.encode("idna").decode("ascii").lower()
    except (UnicodeError, ValueError):
        raise bad from None
    value = f"{local.lower()}@{domain}"
    if len(value) > 254 or ".." in domain or not _DOMAIN.match(domain):
        raise bad
    return value


def mailbox(email: str) -> str:
    """The mailbox behind an address for the confirmation-mail limit: the local part
    without its ``+tag`` (``Victim+1@x`` and ``victim@x`` are one inbox)."""
    local, _, domain = email.strip().lower().rpartition("@")
    return f"{local.split('+', 1)[0]}@{domain}"


def _ns(keys: Keys) -> str:
    return keys.projection("subscribers")


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


# -- writes -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Asked:
    """What a subscribe request did: the subscriber as it now stands, and whether a
    confirmation mail is due (none went to this mailbox within ``confirm_interval``)."""

    subscriber: Subscriber
    mail: bool


# One step, so two requests racing cannot both win the mail: a confirmed subscriber
# is left as is; else the mailbox's mail mark is taken (SET NX) or the request is
# dropped; with the mark, the request is kept until it expires.
_ASK_LUA = """
local rec = redis.call('GET', KEYS[1])
if rec then
  local ok, obj = pcall(cjson.decode, rec)
  if ok and type(obj) == 'table' and obj['status'] == 'confirmed' then return 'confirmed' end
end
if not redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[3]) then return 'throttled' end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
return 'mail'
"""


def ask(
    log: EventLog,
    email: str,
    lang: str,
    topics: Iterable[str] | str | None,
    kinds: Iterable[str] | str | None = None,
    *,
    timing: Mapping[str, Any] | None = None,
    pending_ttl: int = 48 * 3600,
    confirm_interval: int = 24 * 3600,
) -> Asked:
    """A stranger's request for alerts (the form, ``sorawatch subscribe``): kept as a
    pending request outside the log for ``pending_ttl`` seconds, with a confirmation
    mail due unless one went to the same mailbox (case and ``+tag`` folded) in the
    last ``confirm_interval`` seconds. A confirmed subscriber is left as is (only its
    owner changes it, through the preferences link). Raises ValidationError before
    writing anything. Appends nothing: see the module docstring. ``timing``: the
    checked choices of :func:`sorawatch.schedule.choose` (cadence, tz, hour, cap)."""
    address, lang_, topics_, kinds_ = choose_request(email, lang, topics, kinds, normalize_email)
    now = utcnow()
    record = {
        "email": address, "lang": lang_, "topics": list(topics_), "kinds": list(kinds_),
        "status": "pending", "requested_at": now, **(timing or {}),
    }  # fmt: skip
    keys = log.keys
    outcome = text(
        log.redis.eval(
            _ASK_LUA,
            3,
            f"{_ns(keys)}:s:{address}",
            keys.pending(address),
            keys.confirm_mail(mailbox(address)),
            dumps(record),
            max(int(pending_ttl), 1),
            max(int(confirm_interval), 1),
        )
    )
    if outcome == "confirmed":
        found = get(log.redis, keys, address)
        assert found is not None
        return Asked(found, mail=False)
    return Asked(get(log.redis, keys, address) or Subscriber.from_dict(record), outcome == "mail")


def queue_confirmation(log: EventLog, email: str, ttl: int = 48 * 3600) -> None:
    """Put the confirmation mail for ``email`` on this deployment's ``email`` queue
    (the job, and its result, expire: nothing of it is left after ``ttl``)."""
    from sorawatch.events import queue

    queue("email", log.redis, log.keys).enqueue_call(
        CONFIRM_JOB, args=(email,), result_ttl=min(3600, ttl), ttl=ttl, failure_ttl=ttl
    )


def request(
    log: EventLog,
    email: str,
    lang: str,
    topics: Iterable[str] | str | None,
    kinds: Iterable[str] | str | None = None,
    confirmed: bool = False,
    timing: Mapping[str, Any] | None = None,
) -> Subscriber:
    """Ask for alerts: a pending request (see :func:`ask`), or, when ``confirmed``
    (the operator vouches for it), a confirmed subscriber at once.

    Raises ValidationError for a bad address, language, topic or kind, before
    anything is written. Appends ``subscriber.requested`` when ``confirmed``.
    """
    if not confirmed:
        return ask(log, email, lang, topics, kinds, timing=timing).subscriber
    address, lang_, topics_, kinds_ = choose_request(email, lang, topics, kinds, normalize_email)
    now = utcnow()
    data = {
        "email": address, "lang": lang_, "topics": list(topics_), "kinds": list(kinds_),
        "confirmed": True, "requested_at": now, **(timing or {}),
    }  # fmt: skip
    # The timestamp is part of the identity: a re-subscribe is a new event.
    _write(log, Event.new("subscriber.requested", data, address, now, at=now))
    log.redis.delete(log.keys.pending(address))
    found = get(log.redis, log.keys, address)
    assert found is not None
    return found


def confirm(log: EventLog, email: str) -> Subscriber | None:
    """Complete the double opt-in. None for an unknown, expired or unsubscribed address.

    Confirming twice is a no-op. Appends ``subscriber.requested`` (the pending
    request, with its own time) and ``subscriber.confirmed``, then forgets the request.
    """
    address = (email or "").strip().lower()
    redis, keys = log.redis, log.keys
    sub = get(redis, keys, address)
    if sub is None or sub.status == "unsubscribed":
        return None
    if sub.status == "confirmed":
        return sub
    now = utcnow()
    at = sub.requested_at
    confirmed = SubscriberConfirmed(email=address, confirmed_at=now)
    if loads(redis.get(keys.pending(address))):
        data = {
            "email": address, "lang": sub.lang, "topics": list(sub.topics),
            "kinds": list(sub.kinds), "confirmed": False, "requested_at": at,
            **{k: v for k, v in sub.to_dict().items() if k in _SCHEDULE[:-1]},
        }  # fmt: skip
        asked = Event.new("subscriber.requested", data, address, at, at=at)
        done = Event.new("subscriber.confirmed", confirmed, address, at)
        # Ids derive from the request: a second click (or a race) appends nothing.
        log.append_many([(asked, ()), (done, ())])
        apply(redis, keys, asked)
        apply(redis, keys, done)
        redis.delete(keys.pending(address))
    else:  # a pending subscriber from a log written before requests were kept aside
        _write(
            log,
            Event.new("subscriber.confirmed", confirmed, address, at),
        )
    return get(redis, keys, address)


def unsubscribe(log: EventLog, email: str) -> bool:
    """Stop all mail to the address (and forget a pending request); False when it was
    not subscribed. Appends ``subscriber.unsubscribed`` for a subscriber in the log.
    """
    address = (email or "").strip().lower()
    forgot = bool(log.redis.delete(log.keys.pending(address)))
    raw = loads(log.redis.get(f"{_ns(log.keys)}:s:{address}"))
    sub = Subscriber.from_dict(raw) if raw else None
    if sub is None or sub.status == "unsubscribed":
        return forgot
    now = utcnow()
    event = Event.new(
        "subscriber.unsubscribed",
        SubscriberUnsubscribed(email=address, unsubscribed_at=now),
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
    timing: Mapping[str, Any] | None = None,
) -> Subscriber | None:
    """Change a subscriber's preferences (``timing``: see :func:`ask`); None for an
    unknown or unsubscribed address.

    Raises ValidationError before writing anything. Appends ``subscriber.updated``.
    """
    address = (email or "").strip().lower()
    data: dict[str, Any] = {"email": address, **(timing or {})}
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


def revoke_tokens(log: EventLog, email: str) -> bool:
    """Turn away every link (unsubscribe, preferences) signed for the address until
    now, e.g. after one leaked; the next mail carries new ones. False for an address
    not in the log. Appends ``subscriber.tokens_revoked``."""
    address = (email or "").strip().lower()
    raw = loads(log.redis.get(f"{_ns(log.keys)}:s:{address}"))
    if not raw:
        return False
    now = utcnow()
    event = Event.new(
        "subscriber.tokens_revoked",
        SubscriberTokensRevoked(email=address, revoked_at=now),
        address,
        now,
        at=now,
    )
    _write(log, event)
    return True


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
    return {k: d[k] for k in _SCHEDULE[:-1] if k in d}


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

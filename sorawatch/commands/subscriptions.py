"""Subscribe, confirm, change, unsubscribe: the commands that write ``subscriber.*``
events (and apply them), and the pending request kept outside the log.

The read model is ``sorawatch.projections.subscribers``; see its docstring for the keys
and for why a request from the form stays out of the log until it is confirmed.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sorawatch import clock, jobs
from sorawatch.commands import write
from sorawatch.errors import ValidationError
from sorawatch.event_data import (
    SubscriberConfirmed,
    SubscriberTokensRevoked,
    SubscriberUnsubscribed,
)
from sorawatch.events import Event, EventLog, utcnow
from sorawatch.projections import apply
from sorawatch.projections._common import (
    KINDS,
    TOPICS,
    choose,
    choose_lang,
    choose_request,
    dumps,
    loads,
    text,
)
from sorawatch.projections.subscribers import SCHEDULE_FIELDS, Subscriber, get, record_key

CONFIRM_JOB = jobs.SEND_CONFIRMATION

# Deliberately simple: an ASCII local part (no spaces, controls or quoting: the mail
# goes out without SMTPUTF8), one @, a dotted domain in its ASCII (IDNA) form; the
# confirmation mail is the real test of an address.
_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}$")
_DOMAIN = re.compile(
    r"^[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?\.(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})$"
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
            record_key(keys, address),
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
    write(log, Event.new("subscriber.requested", data, address, now, at=now))
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
            **{k: v for k, v in sub.to_dict().items() if k in SCHEDULE_FIELDS[:-1]},
        }  # fmt: skip
        asked = Event.new("subscriber.requested", data, address, at, at=at)
        done = Event.new("subscriber.confirmed", confirmed, address, at)
        # Ids derive from the request: a second click (or a race) appends nothing.
        log.append_many([(asked, ()), (done, ())])
        apply(redis, keys, asked)
        apply(redis, keys, done)
        redis.delete(keys.pending(address))
    else:  # a pending subscriber from a log written before requests were kept aside
        write(
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
    raw = loads(log.redis.get(record_key(log.keys, address)))
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
    write(log, event)
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
    write(log, Event.new("subscriber.updated", data, address, clock.real_iso(), at=now))
    return get(log.redis, log.keys, address)


def revoke_tokens(log: EventLog, email: str) -> bool:
    """Turn away every link (unsubscribe, preferences) signed for the address until
    now, e.g. after one leaked; the next mail carries new ones. False for an address
    not in the log. Appends ``subscriber.tokens_revoked``."""
    address = (email or "").strip().lower()
    raw = loads(log.redis.get(record_key(log.keys, address)))
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
    write(log, event)
    return True

"""The delivery ledger: per (alert, channel, recipient), what happened to the message.

Built from the batch events ``delivery.succeeded`` / ``delivery.failed`` /
``delivery.abandoned`` / ``delivery.retried`` (their ``results`` hold one outcome
per recipient), so ``replay`` rebuilds it. A sender also marks each message sent
*immediately* in an operational hash (``sorawatch.workers.marks.SentMarks``), before its batch
event is written: a worker killed mid-batch then loses at most the messages in flight, and
the re-run finds the others already sent (``already_sent`` reads both).

Bounded growth. What stays is what operators and replay need: per (alert, channel) the
count of deliveries in each status (``:c:``), the dead letters, the pending retries.
The per-recipient outcomes (``:o:``) are kept compact (what the key already says,
and default values, are not stored) and expire ``OUTCOME_TTL`` after the alert's last
delivery event: the expiry time derives from the events' ``at``, not from the clock,
so ``replay`` rebuilds the same keys with the same expiry (an alert finished long
ago gets its counts back and no outcomes). The sent marks of a batch are dropped
once its ``delivery.succeeded`` is applied (the outcome says ``sent`` from then on).

Keys under ``keys.projection("ledger")``: ``:o:<alert>:<channel>`` (hash recipient →
compact outcome JSON, expiring), ``:c:<alert>:<channel>`` (hash status → count),
``:dead`` (hash dead-letter id → JSON) and ``:pending`` (hash id → JSON, deliveries
waiting for a retry). Operational: ``<prefix>:delivery:sent:<alert>:<channel>``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from redis import Redis

from sorawatch.event_data import DeliveryOutcomes, DeliveryRetried
from sorawatch.events import Event
from sorawatch.keys import Keys, digest
from sorawatch.projections import handles
from sorawatch.projections._common import dumps, epoch, loads, text

# Sent marks outlive any retry schedule; the ledger keeps the record after that.
SENT_MARK_TTL = 90 * 86400
# Per-recipient outcomes of an alert outlive its last delivery event by this much: past
# every scheduled retry (about 28 hours) and RQ's 7 days of failed jobs, whose re-run
# must still find who was sent. Counts, dead letters and pending retries stay.
OUTCOME_TTL = 7 * 86400
# Said by the key or by default, so not stored in each compact outcome.
_DERIVED = ("id", "alert_id", "channel", "recipient")
_DEFAULTS: dict[str, Any] = {
    "error": None,
    "permanent": False,
    "attempt": 0,
    "at": None,
    "event": None,
}


def _ns(keys: Keys) -> str:
    return keys.projection("ledger")


def _outcomes_key(keys: Keys, alert_id: str, channel: str) -> str:
    return f"{_ns(keys)}:o:{alert_id}:{channel}"


def _counts_key(keys: Keys, alert_id: str, channel: str) -> str:
    return f"{_ns(keys)}:c:{alert_id}:{channel}"


def _pack(entry: dict[str, Any]) -> str:
    """An outcome without what its key says and without default values. A ``sent``
    outcome (nearly all of them, one per recipient) is just its status: when and in
    which event it was sent is in the log (the batch's ``delivery.succeeded``)."""
    sent = entry.get("status") == "sent"
    return dumps(
        {
            k: v
            for k, v in entry.items()
            if k not in _DERIVED
            and not (k in _DEFAULTS and v == _DEFAULTS[k])
            and not (sent and k in ("at", "event"))
            and not (k == "webhook_id" and v == entry.get("recipient"))
        }
    )


def _unpack(alert_id: str, channel: str, recipient: str, raw: Any) -> dict[str, Any]:
    stored = loads(raw)
    if channel == "webhook":
        stored.setdefault("webhook_id", recipient)
    return {
        "id": letter_id(alert_id, channel, recipient),
        "alert_id": alert_id,
        "channel": channel,
        "recipient": recipient,
        **_DEFAULTS,
        **stored,
    }


def _dead_key(keys: Keys) -> str:
    return f"{_ns(keys)}:dead"


def _pending_key(keys: Keys) -> str:
    return f"{_ns(keys)}:pending"


def letter_id(alert_id: str, channel: str, recipient: str) -> str:
    """A short, stable id for one (alert, channel, recipient) delivery."""
    return "dl_" + digest(f"{alert_id}\x1f{channel}\x1f{recipient}", 16)


# -- the sender's immediate marks ---------------------------------------------------


def already_sent(
    redis: Redis, keys: Keys, alert_id: str, channel: str, recipients: Iterable[str]
) -> set[str]:
    """The recipients of ``recipients`` that were sent this alert (marks or ledger)."""
    wanted = list(dict.fromkeys(recipients))
    if not wanted:
        return set()
    with redis.pipeline(transaction=False) as pipe:
        pipe.hmget(keys.sent_marks(alert_id, channel), wanted)
        pipe.hmget(_outcomes_key(keys, alert_id, channel), wanted)
        marks, records = pipe.execute()
    done: set[str] = set()
    for recipient, mark, record in zip(wanted, marks, records, strict=True):
        if mark is not None or (record is not None and loads(record).get("status") == "sent"):
            done.add(recipient)
    return done


# -- reads ----------------------------------------------------------------------------


def forget_marks(
    redis: Redis, keys: Keys, alert_id: str, channel: str, recipients: Iterable[str]
) -> None:
    """Drop the sent marks of ``recipients`` once their ``sent`` outcome is applied."""
    names = list(recipients)
    if names:
        redis.hdel(keys.sent_marks(alert_id, channel), *names)


def record(
    redis: Redis, keys: Keys, alert_id: str, channel: str, recipient: str
) -> dict[str, Any] | None:
    """The ledger record of one delivery, or None when nothing is recorded (or the
    alert's outcomes have expired)."""
    raw = redis.hget(_outcomes_key(keys, alert_id, channel), recipient)
    return _unpack(alert_id, channel, recipient, raw) if raw is not None else None


def status(redis: Redis, keys: Keys, alert_id: str, channel: str, recipient: str) -> str | None:
    """``sent``, ``failed`` (a retry is due), ``abandoned``, ``retrying`` (requeued by
    hand) or None; a message marked sent whose batch event is not written yet is ``sent``."""
    if redis.hexists(keys.sent_marks(alert_id, channel), recipient):
        return "sent"
    found = record(redis, keys, alert_id, channel, recipient)
    return None if found is None else str(found["status"])


def outcomes(redis: Redis, keys: Keys, alert_id: str, channel: str) -> dict[str, dict[str, Any]]:
    """Every recorded outcome of one alert on one channel, by recipient (none once
    they have expired)."""
    raw = redis.hgetall(_outcomes_key(keys, alert_id, channel))
    return {text(k): _unpack(alert_id, channel, text(k) or "", v) for k, v in raw.items()}


def counts(redis: Redis, keys: Keys, alert_id: str, channel: str) -> dict[str, int]:
    """How many deliveries of an alert are in each status (kept after the per-recipient
    outcomes expire)."""
    raw = redis.hgetall(_counts_key(keys, alert_id, channel))
    found = {text(k) or "": int(v) for k, v in raw.items()}
    return {k: v for k, v in sorted(found.items()) if v > 0}


def _listing(
    redis: Redis, key: str, alert_id: str | None, channel: str | None
) -> list[dict[str, Any]]:
    rows = [loads(v) for v in redis.hvals(key)]
    rows = [
        r
        for r in rows
        if (alert_id is None or r["alert_id"] == alert_id)
        and (channel is None or r["channel"] == channel)
    ]
    rows.sort(key=lambda r: (r.get("at") or "", r["id"]))
    return rows


def dead_letters(
    redis: Redis, keys: Keys, alert_id: str | None = None, channel: str | None = None
) -> list[dict[str, Any]]:
    """Abandoned deliveries, oldest first: ``{"id", "alert_id", "channel", "recipient",
    "error", "attempt", "permanent", "at"}``."""
    return _listing(redis, _dead_key(keys), alert_id, channel)


def dead_letter(redis: Redis, keys: Keys, letter: str) -> dict[str, Any] | None:
    raw = redis.hget(_dead_key(keys), letter)
    return loads(raw) if raw is not None else None


def pending(
    redis: Redis, keys: Keys, alert_id: str | None = None, channel: str | None = None
) -> list[dict[str, Any]]:
    """Deliveries that failed and wait for a scheduled retry (or were requeued by hand)."""
    return _listing(redis, _pending_key(keys), alert_id, channel)


# -- projection handlers ---------------------------------------------------------------

_STATUS = {
    "delivery.succeeded": "sent",
    "delivery.failed": "failed",
    "delivery.abandoned": "abandoned",
}


def _previous(
    redis: Redis, keys: Keys, alert_id: str, channel: str, recipients: list[str]
) -> tuple[list[str | None], int]:
    """Each recipient's current status (from its outcome, else from the dead letters or
    the pending retries, which outlive the outcomes) and the outcomes' expiry (ms since
    1970; -1 none, -2 no key)."""
    lids = [letter_id(alert_id, channel, r) for r in recipients]
    with redis.pipeline(transaction=False) as pipe:
        pipe.hmget(_outcomes_key(keys, alert_id, channel), recipients)
        pipe.hmget(_dead_key(keys), lids)
        pipe.hmget(_pending_key(keys), lids)
        pipe.pexpiretime(_outcomes_key(keys, alert_id, channel))
        current, dead, waiting, expires = pipe.execute()
    found: list[str | None] = []
    for raw, letter, queued in zip(current, dead, waiting, strict=True):
        chosen = raw if raw is not None else letter if letter is not None else queued
        found.append(None if chosen is None else str(loads(chosen)["status"]))
    return found, int(expires)


def _write(
    redis: Redis,
    keys: Keys,
    event: Event,
    alert_id: str,
    channel: str,
    rows: list[tuple[dict[str, Any], str | None]],
    expires: int,
) -> None:
    """Write ``rows`` (entry, previous status) of one event: outcomes (compact, expiring
    ``OUTCOME_TTL`` after the latest event), counts, dead letters, pending retries."""
    okey = _outcomes_key(keys, alert_id, channel)
    deltas: dict[str, int] = {}
    entries: dict[str, str] = {}
    dead: dict[str, str] = {}
    gone: list[str] = []
    waiting: dict[str, str] = {}
    done: list[str] = []
    for entry, previous in rows:
        entries[entry["recipient"]] = _pack(entry)
        if previous != entry["status"]:
            deltas[entry["status"]] = deltas.get(entry["status"], 0) + 1
            if previous is not None:
                deltas[previous] = deltas.get(previous, 0) - 1
        # The whole entry only where it is kept whole (a sent one, nearly all, is not).
        if entry["status"] == "abandoned":
            dead[entry["id"]] = dumps(entry)
        else:
            gone.append(entry["id"])
        if entry["status"] in ("failed", "retrying"):
            waiting[entry["id"]] = dumps(entry)
        else:
            done.append(entry["id"])
    until = int((epoch(event.at) + OUTCOME_TTL) * 1000)
    with redis.pipeline(transaction=True) as pipe:
        pipe.hset(okey, mapping=entries)  # type: ignore[arg-type]
        pipe.pexpireat(okey, max(until, expires))
        for status, delta in deltas.items():
            if delta:
                pipe.hincrby(_counts_key(keys, alert_id, channel), status, delta)
        if dead:
            pipe.hset(_dead_key(keys), mapping=dead)  # type: ignore[arg-type]
        if gone:
            pipe.hdel(_dead_key(keys), *gone)
        if waiting:
            pipe.hset(_pending_key(keys), mapping=waiting)  # type: ignore[arg-type]
        if done:
            pipe.hdel(_pending_key(keys), *done)
        pipe.execute()


@handles("delivery.succeeded", "delivery.failed", "delivery.abandoned")
def _apply_results(redis: Redis, keys: Keys, event: Event) -> None:
    d = event.data_as(DeliveryOutcomes)
    alert_id = str(d["alert_id"])
    channel = str(d["channel"])
    new_status = _STATUS[event.type]
    results = list(d.get("results") or ())
    if not results:
        return
    previous, expires = _previous(
        redis, keys, alert_id, channel, [str(r["recipient"]) for r in results]
    )
    # One command per hash for the whole event (not three per recipient): every
    # entry of an event has the same status, so each lands in or leaves the same hashes.
    rows: list[tuple[dict[str, Any], str | None]] = []
    for result, before in zip(results, previous, strict=True):
        recipient = str(result["recipient"])
        if before == "sent" and new_status != "sent":
            continue  # a late failure report never un-sends a message
        entry = {
            "id": letter_id(alert_id, channel, recipient),
            "alert_id": alert_id,
            "channel": channel,
            "recipient": recipient,
            "status": new_status,
            "error": result.get("error"),
            "attempt": result.get("attempt", 0),
            "permanent": bool(result.get("permanent", False)),
            "at": event.at,
            "event": event.id,
        }
        if "webhook_id" in result:
            entry["webhook_id"] = result["webhook_id"]
        if "retry_at" in result:
            entry["retry_at"] = result["retry_at"]
        rows.append((entry, before))
    if rows:
        _write(redis, keys, event, alert_id, channel, rows, expires)


@handles("delivery.retried")
def _apply_retried(redis: Redis, keys: Keys, event: Event) -> None:
    """A dead letter requeued by hand leaves the dead letters and waits again."""
    d = event.data_as(DeliveryRetried)
    alert_id = str(d["alert_id"])
    channel = str(d["channel"])
    recipients = [str(r) for r in d.get("recipients") or ()]
    if not recipients:
        return
    previous, expires = _previous(redis, keys, alert_id, channel, recipients)
    rows: list[tuple[dict[str, Any], str | None]] = []
    for recipient, before in zip(recipients, previous, strict=True):
        entry = {
            "id": letter_id(alert_id, channel, recipient),
            "alert_id": alert_id,
            "channel": channel,
            "recipient": recipient,
            "status": "retrying",
            "error": None,
            "attempt": 0,
            "permanent": False,
            "at": event.at,
            "event": event.id,
        }
        rows.append((entry, before))
    _write(redis, keys, event, alert_id, channel, rows, expires)

"""Redelivery by hand: requeue abandoned deliveries (dead letters), recorded as
``delivery.retried`` events. The read model is ``sorawatch.projections.ledger``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sorawatch import clock, jobs
from sorawatch.event_data import DeliveryRetried
from sorawatch.events import Event, EventLog, Job, job_id, utcnow
from sorawatch.projections import apply
from sorawatch.projections.ledger import dead_letters

RETRY_BATCH = 250  # recipients per requeued job, like a fan-out batch


def retry_dead_letters(
    log: EventLog,
    letter_ids: Iterable[str] | None = None,
    *,
    alert_id: str | None = None,
    channel: str | None = None,
    batch_size: int = RETRY_BATCH,
) -> list[dict[str, Any]]:
    """Requeue abandoned deliveries by hand: the given ``letter_ids``, else all of them
    (of one alert and/or channel when given).

    One ``delivery.retried`` event per (alert, channel) batch, appended together with a
    fresh batch job at attempt 0 (its ``tag`` is the event id, so its outcomes are a
    new batch), then applied so the letters leave the dead-letter list at once.
    Unknown ids are ignored. Returns the letters requeued.
    """
    redis, keys = log.redis, log.keys
    letters = dead_letters(redis, keys, alert_id=alert_id, channel=channel)
    if letter_ids is not None:
        wanted = set(letter_ids)
        letters = [d for d in letters if d["id"] in wanted]
    groups: dict[tuple[str, str], list[str]] = {}
    for letter in letters:
        groups.setdefault((letter["alert_id"], letter["channel"]), []).append(letter["recipient"])
    now, real = utcnow(), clock.real_iso()
    for (alert, chan), recipients in sorted(groups.items()):
        ordered = sorted(recipients)
        for start in range(0, len(ordered), batch_size):
            chunk = ordered[start : start + batch_size]
            data: DeliveryRetried = {"alert_id": alert, "channel": chan, "recipients": chunk}
            # Real time in the identity: a second retry is a new event even when the
            # clock stands still (SORAWATCH_NOW).
            event = Event.new("delivery.retried", data, alert, chan, chunk, real, at=now)
            job = Job(chan, jobs.DELIVERY_FUNCS[chan], (alert, chunk, 0, event.id),
                      job_id(chan, "retry", event.id))  # fmt: skip
            if log.append(event, [job]).new:
                apply(redis, keys, event)
    return letters

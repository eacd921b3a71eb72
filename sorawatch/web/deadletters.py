"""Retrying dead letters by hand: ``delivery.retried`` events with their jobs.

One event per (alert, channel) batch, appended together with the delivery job
that tries again from attempt 0 (tagged, so its batch events get new ids), then
applied to the ledger so the letters leave the dead-letter list at once.
"""

from __future__ import annotations

from collections import defaultdict

from sorawatch.events import Event, EventLog, Job, job_id, utcnow
from sorawatch.keys import digest
from sorawatch.projections import apply, ledger

JOBS = {"email": "workers.email.deliver_email", "webhook": "workers.webhook.deliver_webhooks"}


def retry(
    log: EventLog,
    alert_id: str | None = None,
    channel: str | None = None,
    batch_size: int = 250,
) -> int:
    """Requeue the dead letters (of one alert and/or channel); returns how many.

    Writes ``delivery.retried`` events, enqueues their jobs atomically with them
    and applies them to the ledger.
    """
    letters = ledger.dead_letters(log.redis, log.keys, alert_id=alert_id, channel=channel)
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for letter in letters:
        if letter["channel"] not in JOBS:
            continue
        recipient = str(letter.get("webhook_id") or letter["recipient"])
        groups[(letter["alert_id"], letter["channel"])].append(recipient)
    now = utcnow()
    total = 0
    for (alert, chan), recipients in sorted(groups.items()):
        for start in range(0, len(recipients), batch_size):
            chunk = sorted(recipients[start : start + batch_size])
            # The tag gives the retried batch's events ids of their own.
            tag = "manual-" + digest("\x1f".join([alert, chan, now, *chunk]), 12)
            data = {"alert_id": alert, "channel": chan, "recipients": chunk, "tag": tag,
                    "requested_at": now}  # fmt: skip
            event = Event.new("delivery.retried", data, alert, chan, chunk, now, at=now)
            job = Job(chan, JOBS[chan], (alert, chunk, 0, tag), job_id(chan, alert, tag))
            appended = log.append(event, [job])
            if appended.new:
                apply(log.redis, log.keys, event)
                total += len(chunk)
    return total

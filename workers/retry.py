"""What a delivery batch does with its outcomes: record them, retry, give up.

Every channel (``sorawatch.workers.channels``) ends a batch the same way: one
``delivery.succeeded`` event for what was sent, one ``delivery.failed`` for what
will be retried (and a smaller batch job scheduled with the RQ scheduler after
the schedule's delay), one ``delivery.abandoned`` for what failed permanently or
ran out of attempts. Per batch, never per recipient: the log stays readable at
100,000 subscribers. Events are then applied to the ledger projection.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from redis import Redis
from rq import Retry

from sorawatch import clock, metrics
from sorawatch.events import Event, EventLog, job_id, queue
from sorawatch.keys import Keys
from sorawatch.projections import apply, ledger
from sorawatch.settings import Settings
from sorawatch.workers import channels
from sorawatch.workers.channels import Batch

# The longest we let a Retry-After header push a retry out.
MAX_RETRY_AFTER = 24 * 3600.0
# RQ re-runs a job whose worker died (SIGKILL, OOM) or that raised, this many times;
# the ledger makes those re-runs skip what was already sent.
JOB_RETRIES = Retry(max=3, interval=[10, 60, 300])


def job_timeout(settings: Settings, channel: str, recipients: int) -> int:
    """A batch job's RQ timeout, as ``channel`` sizes it (see ``Channel.timeout``)."""
    return channels.get(channel).timeout(settings, recipients)


def enqueue_delivery(
    redis: Redis,
    settings: Settings,
    channel: str,
    func: str,
    args: tuple[Any, ...],
    jid: str,
    *,
    delay: float = 0.0,
    kwargs: dict[str, Any] | None = None,
    pipeline: Any = None,
) -> None:
    """Put a delivery batch on its channel's queue (now, or after ``delay`` seconds via
    the RQ scheduler), with a timeout sized to the batch and RQ-level retries."""
    q = queue(channels.get(channel).queue, redis, Keys(settings.redis.prefix))
    q.get_redis_server_version()  # cached on the client, never read inside a MULTI
    options: dict[str, Any] = {
        "job_id": jid,
        "timeout": job_timeout(settings, channel, len(args[1])),
        "result_ttl": 3600,
        "failure_ttl": 7 * 86400,
        "retry": JOB_RETRIES,
        "pipeline": pipeline,
    }
    if delay <= 0:
        q.enqueue_call(func, args=args, kwargs=kwargs or {}, **options)
    else:
        # enqueue_in passes unknown keywords to the job: its timeout option is `job_timeout`.
        options["job_timeout"] = options.pop("timeout")
        q.enqueue_in(timedelta(seconds=delay), func, *args, **(kwargs or {}), **options)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one recipient's message in this attempt."""

    recipient: str
    ok: bool
    error: str | None = None
    permanent: bool = False
    retry_after: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def batch_tag(recipients: Sequence[str], tag: str = "") -> str:
    """A stable name for a batch: the digest of its recipients (plus a manual-retry tag)."""
    raw = json.dumps([sorted(recipients), tag], ensure_ascii=False)
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:16]


def retry_delay(schedule: Sequence[int], attempt: int, retry_after: float | None) -> float | None:
    """Seconds to wait before ``attempt`` (None: the schedule is used up).

    The schedule's delay gets ±10 % jitter, so endpoints that failed together do not
    all come back at the same instant; a ``Retry-After`` longer than that wins.
    """
    if attempt >= len(schedule):
        return None
    base = float(schedule[attempt])
    delay = base * random.uniform(0.9, 1.1) if base > 0 else 0.0
    if retry_after is not None and retry_after > delay:
        delay = min(retry_after, MAX_RETRY_AFTER)
    return delay


def finish(
    log: EventLog,
    batch: Batch,
    recipients: Sequence[str],
    results: Sequence[Outcome],
    schedule: Sequence[int],
    settings: Settings,
) -> dict[str, int]:
    """Record a batch's outcomes as events, schedule the retry, apply to the ledger.

    Returns counts ``{"sent", "retry", "abandoned"}``. Writes the events (idempotent:
    their ids derive from the batch, so a re-run job writes nothing twice), the
    retry job (its id derives from the batch too) and metrics.
    """
    redis, keys = log.redis, log.keys
    tag = batch_tag(recipients, batch.tag)
    now = clock.now()
    sent: list[dict[str, Any]] = []
    retry: list[dict[str, Any]] = []
    dead: list[dict[str, Any]] = []
    retry_after: float | None = None
    for out in results:
        row: dict[str, Any] = {
            "recipient": out.recipient,
            "outcome": "sent" if out.ok else "failed",
            "attempt": batch.attempt,
            **out.extra,
        }
        if out.error is not None:  # one row per recipient in the log: no null fields
            row["error"] = out.error
        if out.ok:
            sent.append(row)
            continue
        if out.permanent or batch.attempt + 1 >= len(schedule):
            row.update(outcome="abandoned", permanent=out.permanent)
            dead.append(row)
            continue
        if out.retry_after is not None:
            retry_after = max(retry_after or 0.0, out.retry_after)
        retry.append(row)
    delay = retry_delay(schedule, batch.attempt + 1, retry_after) if retry else None
    if retry and delay is not None:
        at = (now + timedelta(seconds=delay)).isoformat().replace("+00:00", "Z")
        for row in retry:
            row["retry_at"] = at
        _schedule_retry(log, batch, [r["recipient"] for r in retry], tag, delay, settings)
    identity = (batch.alert_id, batch.channel, tag, batch.attempt)
    events = [
        Event.new(
            name,
            {
                "alert_id": batch.alert_id,
                "channel": batch.channel,
                "results": rows,
                "attempt": batch.attempt,
                "batch": tag,
            },
            *identity,
        )
        for name, rows in (
            ("delivery.succeeded", sent),
            ("delivery.failed", retry),
            ("delivery.abandoned", dead),
        )
        if rows
    ]
    appended = log.append_many([(e, ()) for e in events])
    for item in appended:
        # A re-run applies what the log holds, not what this run computed.
        logged = item.event if item.new else (log.get(item.event.id) or item.event)
        apply(redis, keys, logged)
    if sent:  # the outcomes now say sent: the immediate marks have done their job
        ledger.forget_marks(
            redis, keys, batch.alert_id, batch.channel, [r["recipient"] for r in sent]
        )
    with redis.pipeline(transaction=False) as pipe:
        for name, rows in (("sent", sent), ("retry", retry), ("abandoned", dead)):
            if rows:
                metrics.incr(
                    pipe, keys, "deliveries", len(rows), channel=batch.channel, outcome=name
                )
        pipe.execute()
    return {"sent": len(sent), "retry": len(retry), "abandoned": len(dead)}


def _schedule_retry(
    log: EventLog,
    batch: Batch,
    recipients: list[str],
    tag: str,
    delay: float,
    settings: Settings,
) -> None:
    """Enqueue (delay 0) or schedule the smaller batch for the next attempt.

    The job id derives from the batch and the attempt, so a re-run of this job
    replaces the retry instead of adding a second one.
    """
    jid = job_id(batch.channel, batch.alert_id, tag, f"a{batch.attempt + 1}")
    enqueue_delivery(
        log.redis,
        settings,
        batch.channel,
        batch.func,
        (batch.alert_id, recipients, batch.attempt + 1),
        jid,
        delay=delay,
        kwargs={"tag": batch.tag} if batch.tag else None,
    )

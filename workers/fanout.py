"""Fan-out: one ``alert.raised`` → batch jobs on each channel's queue.

Each registered channel (``sorawatch.workers.channels``: confirmed subscribers by email, active
webhooks) finds the recipients that want the alert's topic and kind; they are cut
into batches of ``workers.batch_size``. The batch plan is written once
(``SET NX``): a re-run, even after subscribers came and went, reads the same plan
and enqueues the same jobs, whose ids derive from the alert id and the batch
number; and a ``done`` mark, set in the same MULTI as the enqueues (under WATCH),
makes a re-run or a concurrent run enqueue nothing at all. The plan is deleted in
that MULTI: past the ``done`` mark nobody reads it (it held every recipient's
address, ~30 bytes a subscriber, for 30 days).

A transaction that fails is tried again until it finds the done mark: redis-py
reports a connection dropped between WATCH and EXEC (a Redis restart) as a
WatchError too, and taking that for "a concurrent run did it" lost the alert.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from redis import Redis
from redis.exceptions import WatchError

from sorawatch import metrics
from sorawatch.errors import EventError, SorawatchError
from sorawatch.event_data import AlertRaised
from sorawatch.events import EventLog, job_id
from sorawatch.keys import Keys
from sorawatch.settings import Settings
from sorawatch.workers import channels, runtime
from sorawatch.workers.retry import enqueue_delivery

PLAN_TTL = 30 * 86400  # long after any retry; losing it only matters to a re-run
TRANSACTION_TRIES = 10  # each try ends in the done mark, or in a WatchError nobody caused twice


class FanOutBusy(SorawatchError):
    """The fan-out transaction kept failing (RQ retries the job)."""


def chunks(pages: Iterable[list[str]], size: int) -> Iterator[list[str]]:
    """Re-cut pages of any size into lists of at most ``size``."""
    batch: list[str] = []
    for page in pages:
        for item in page:
            batch.append(item)
            if len(batch) >= size:
                yield batch
                batch = []
    if batch:
        yield batch


def wanted(alert: Mapping[str, Any]) -> dict[str, str]:
    """Channel → the subscription kind its recipients must want. Alerts from before
    story alerts name one kind for every channel."""
    want = alert.get("want")
    if isinstance(want, dict):
        return {str(c): str(k) for c, k in want.items()}
    return {c.name: str(alert["kind"]) for c in channels.registered()}


def nothing() -> dict[str, int]:
    """Zero recipients on every channel: what a run that enqueues nothing returns."""
    return {c.name: 0 for c in channels.registered()}


def make_plan(redis: Redis, keys: Keys, alert: AlertRaised, size: int) -> dict[str, Any]:
    """The recipients of an alert, batched per channel: ``{"email": [[...], ...],
    "webhook": [...]}``.

    A recipient wanting any of the alert's topics (and the channel's kind) gets it once.
    """
    topics = [str(t) for t in alert.get("topics") or [alert["topic"]]]
    want = wanted(alert)
    return {
        c.name: list(chunks(c.recipients(redis, keys, topics, want.get(c.name), size), size))
        for c in channels.registered()
    }


def plan(redis: Redis, keys: Keys, alert: AlertRaised, size: int) -> dict[str, Any]:
    """The alert's batch plan: made and stored once, read back ever after."""
    key = keys.fanout_plan(str(alert["alert_id"]))
    stored = redis.get(key)
    if stored is None:
        fresh = make_plan(redis, keys, alert, size)
        redis.set(key, json.dumps(fresh, ensure_ascii=False), nx=True, ex=PLAN_TTL)
        stored = redis.get(key)
    if stored is None:
        # Another run wrote it first and has finished since: its done mark deleted the
        # plan, and the caller finds that mark and enqueues nothing.
        return {c.name: [] for c in channels.registered()}
    return dict(json.loads(stored))  # whoever wrote first wins


def fan_out_alert(log: EventLog, alert: AlertRaised, settings: Settings) -> dict[str, int]:
    """Enqueue the batch jobs of one alert, once; returns recipients per channel
    (zeros when an earlier run already did it). Writes the plan, the jobs, metrics."""
    redis, keys = log.redis, log.keys
    alert_id = str(alert["alert_id"])
    if alert.get("baseline"):
        return nothing()
    batches = plan(redis, keys, alert, settings.workers.batch_size)
    jobs = [
        (channel, recipients, job_id(channel.name, alert_id, f"b{n:05d}"))
        for channel in channels.registered()
        for n, recipients in enumerate(batches.get(channel.name, []))
    ]
    done = keys.fanout_done(alert_id)
    counts = {c: sum(len(b) for b in batches.get(c, [])) for c in nothing()}
    with redis.pipeline() as pipe:
        for _ in range(TRANSACTION_TRIES):
            try:
                pipe.watch(done)  # type: ignore[no-untyped-call]
                if pipe.exists(done):
                    return nothing()
                pipe.multi()
                for channel, recipients, jid in jobs:
                    args = (alert_id, recipients, 0)
                    enqueue_delivery(
                        redis, settings, channel.name, channel.func, args, jid, pipeline=pipe
                    )
                pipe.set(done, len(jobs), ex=PLAN_TTL)
                pipe.delete(keys.fanout_plan(alert_id))
                for name, n in counts.items():
                    metrics.incr(pipe, keys, "fanout_recipients", n, channel=name)
                pipe.execute()
                return counts
            except WatchError:
                # Either a concurrent run set the done mark (the next look finds it) or
                # the connection dropped mid-transaction (redis-py says so with a
                # WatchError too, and nothing was written): look again, never assume.
                continue
    raise FanOutBusy(f"alert {alert_id}: the fan-out transaction failed {TRANSACTION_TRIES} times")


def fan_out(alert_event_id: str) -> dict[str, int]:
    """RQ job (queue ``changes``): fan an ``alert.raised`` event out to its recipients.

    Raises EventError when the event is not in the log or is not an alert.
    """
    rt = runtime.current()
    event = rt.log.get(alert_event_id)
    if event is None or event.type != "alert.raised":
        raise EventError(f"{alert_event_id}: not an alert.raised event in the log")
    return fan_out_alert(rt.log, event.data_as(AlertRaised), rt.settings)

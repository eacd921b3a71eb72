"""The log channel: each alert as one JSON line in ``<data dir>/alerts.jsonl``.

A channel in one module: one recipient (``log``) for every alert, whatever kind it
names, and a job that writes the line and ends its batch through
``sorawatch.workers.retry.finish``, so the ledger records it like any delivery. Not registered
by default (``sorawatch.jobs.LOG`` is not in ``CHANNELS``); the tests register it
with ``sorawatch.workers.channels.register(log.CHANNEL)``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from redis import Redis

from sorawatch import jobs
from sorawatch.errors import EventError
from sorawatch.keys import Keys
from sorawatch.projections import alerts, ledger
from sorawatch.settings import Settings
from sorawatch.workers import runtime
from sorawatch.workers.channels.base import Channel
from sorawatch.workers.retry import Outcome, finish

RECIPIENT = "log"


def recipients(
    redis: Redis, keys: Keys, topics: Sequence[str], kind: str | None, size: int
) -> Iterable[list[str]]:
    """The one recipient, for every alert."""
    return [[RECIPIENT]]


def schedule(settings: Settings) -> Sequence[int]:
    return settings.workers.retry_schedule


def pace(settings: Settings) -> tuple[float, int]:
    return 1.0, 1  # a local append


def path(settings: Settings) -> Path:
    """The file the alerts are appended to."""
    return settings.data_dir / "alerts.jsonl"


def deliver_log(
    alert_id: str, recipients: list[str], attempt: int = 0, tag: str = ""
) -> dict[str, int]:
    """RQ job (queue ``log``): append ``alert_id`` to the log file once per recipient
    not yet sent; returns counts like the other channels' jobs. Raises EventError
    when the alert is unknown. Writes the file, the delivery events and the ledger."""
    rt = runtime.current()
    alert = alerts.get(rt.redis, rt.keys, alert_id)
    if alert is None:
        raise EventError(f"alert {alert_id}: not found, nothing to log")
    batch = CHANNEL.open(alert_id, attempt, tag)
    todo = list(dict.fromkeys(recipients))
    done = ledger.already_sent(rt.redis, rt.keys, alert_id, CHANNEL.name, todo)
    outcomes = [Outcome(r, True) for r in todo if r not in done]
    if outcomes:
        target = path(rt.settings)
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("a", encoding="utf-8") as fh:
            for _ in outcomes:
                fh.write(json.dumps(alert, ensure_ascii=False, sort_keys=True) + "\n")
    return finish(rt.log, batch, todo, outcomes, CHANNEL.schedule(rt.settings), rt.settings)


CHANNEL = Channel(jobs.LOG, recipients, schedule, pace)

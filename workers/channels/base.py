"""What a delivery channel is: its core-side names, who gets an alert, how it retries.

A channel owns its queue and job function (``sorawatch.jobs.ChannelJob``: the core
lists channels without importing ``workers``), the finding of an alert's recipients
(used by the fan-out), the opening of a batch (``Batch``, which ``sorawatch.workers.retry.finish``
ends), its name in the ledger and its retry schedule and pace (used for the job's
timeout).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from redis import Redis

from sorawatch.errors import EventError
from sorawatch.events import EventLog
from sorawatch.jobs import ChannelJob
from sorawatch.keys import Keys
from sorawatch.projections import alerts, ledger
from sorawatch.settings import Settings

# (redis, keys, the alert's topics, the kind the alert names for this channel or None,
# the batch size) → pages of recipients; the fan-out cuts them into batches.
Recipients = Callable[[Redis, Keys, Sequence[str], str | None, int], Iterable[list[str]]]


@dataclass(frozen=True, slots=True)
class Batch:
    """One delivery job's identity: which alert, channel, attempt, and how to retry it."""

    alert_id: str
    channel: str  # a channel's name, as in the ledger
    attempt: int
    func: str  # dotted path of the job function, for the retry
    tag: str = ""


@dataclass(frozen=True, slots=True)
class Opening:
    """What a batch job starts from (see ``Channel.start``)."""

    alert: dict[str, Any]
    batch: Batch
    recipients: list[str]  # once each, in order
    done: set[str]  # sent already: a sent mark or the ledger says so
    recovered: list[str]  # of ``done``, sent by a run that died before its batch event


@dataclass(frozen=True, slots=True)
class Channel:
    """A delivery channel. ``schedule`` gives the seconds before each attempt (after
    the last, a dead letter); ``pace`` gives (seconds one message may take, messages
    sent at once), which size a batch job's timeout."""

    job: ChannelJob
    recipients: Recipients
    schedule: Callable[[Settings], Sequence[int]]
    pace: Callable[[Settings], tuple[float, int]]

    @property
    def name(self) -> str:
        return self.job.name

    @property
    def queue(self) -> str:
        return self.job.queue

    @property
    def func(self) -> str:
        return self.job.func

    def open(self, delivery_id: str, attempt: int, tag: str = "") -> Batch:
        """The batch a job of this channel sends: ended by ``sorawatch.workers.retry.finish``."""
        return Batch(delivery_id, self.name, attempt, self.func, tag)

    def start(
        self, log: EventLog, alert_id: str, recipients: Sequence[str], attempt: int, tag: str = ""
    ) -> Opening:
        """Open a batch job of ``alert_id`` to ``recipients``. Raises EventError when the
        alert is unknown. The ``recovered`` recipients have their ``sent`` outcome
        recorded by nobody yet: the job records them with its own."""
        redis, keys = log.redis, log.keys
        alert = alerts.get(redis, keys, alert_id)
        if alert is None:
            raise EventError(f"alert {alert_id}: not found, nothing to send")
        wanted = list(dict.fromkeys(recipients))
        done = ledger.already_sent(redis, keys, alert_id, self.name, wanted)
        recovered = [
            r
            for r in wanted
            if r in done and ledger.record(redis, keys, alert_id, self.name, r) is None
        ]
        return Opening(alert, self.open(alert_id, attempt, tag), wanted, done, recovered)

    def timeout(self, settings: Settings, recipients: int) -> int:
        """A batch job's RQ timeout: long enough for every message to use its whole
        deadline."""
        per, lanes = self.pace(settings)
        return int(math.ceil(max(recipients, 1) / lanes) * per + 120)

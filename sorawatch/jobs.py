"""Every RQ job function, named once, and the delivery channels' queues and jobs.

RQ stores a job's function as a dotted path and imports it when a worker runs the
job; the core never imports ``sorawatch.watcher`` or ``sorawatch.workers`` (they import it), so the
names live here as strings and everything that enqueues a job takes them from here.
``tests/workers/test_jobs.py`` resolves each one. The values are what the queues of a
running deployment hold: changing one strands its queued jobs.

A delivery channel's core-side names (its ledger name, queue and job) are here too, so
the ledger, the CLI and the web app can list the channels without importing
``workers``; the rest of a channel (its recipients, retry schedule, pace) is in
``sorawatch.workers.channels``, whose ``register`` adds a channel to both places.
"""

from __future__ import annotations

from dataclasses import dataclass

PROCESS_CHANGE = "sorawatch.workers.jobs.process_change"  # queue "changes": one item.seen/revised
FAN_OUT = "sorawatch.workers.fanout.fan_out"  # queue "changes": one alert.raised → batch jobs
DELIVER_EMAIL = "sorawatch.workers.email.deliver_email"  # queue "email": an alert or digest batch
DELIVER_WEBHOOKS = "sorawatch.workers.webhook.deliver_webhooks"  # queue "webhook": an alert batch
SEND_CONFIRMATION = "sorawatch.workers.email.send_confirmation"  # queue "email": one confirmation
# Queue "log", when that channel is registered.
DELIVER_LOG = "sorawatch.workers.channels.log.deliver_log"

CHANGES = "changes"  # the queue of change processing and fan-out

# Every job function the code enqueues (the channels' jobs included).
ALL = (PROCESS_CHANGE, FAN_OUT, DELIVER_EMAIL, DELIVER_WEBHOOKS, SEND_CONFIRMATION, DELIVER_LOG)


@dataclass(frozen=True, slots=True)
class ChannelJob:
    """A delivery channel as the core sees it: its name (in the ledger and in events),
    its queue, and its batch job, called ``func(delivery_id, recipients, attempt, tag)``."""

    name: str
    queue: str
    func: str


EMAIL = ChannelJob("email", "email", DELIVER_EMAIL)
WEBHOOK = ChannelJob("webhook", "webhook", DELIVER_WEBHOOKS)
# Every alert as a line in a file: registered only where asked (the tests), so the
# default queues, fan-out figures and plans stay those of email and webhooks.
LOG = ChannelJob("log", "log", DELIVER_LOG)

# Channel name → its jobs, in delivery order; and name → job path (the ledger's view).
CHANNELS: dict[str, ChannelJob] = {c.name: c for c in (EMAIL, WEBHOOK)}
DELIVERY_FUNCS: dict[str, str] = {c.name: c.func for c in CHANNELS.values()}


def register(channel: ChannelJob) -> None:
    """Add (or replace) a channel; ``sorawatch.workers.channels.register`` calls this."""
    CHANNELS[channel.name] = channel
    DELIVERY_FUNCS[channel.name] = channel.func


def unregister(name: str) -> None:
    """Remove a channel added by ``register`` (tests that add one take it away)."""
    CHANNELS.pop(name, None)
    DELIVERY_FUNCS.pop(name, None)


def queues() -> tuple[str, ...]:
    """Every queue a worker serves, in flow order: changes, then each channel's."""
    return (CHANGES, *dict.fromkeys(c.queue for c in CHANNELS.values()))

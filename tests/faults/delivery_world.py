"""What the delivery fault tests share: many subscribers and webhooks, one alert,
a slow real SMTP server, and readings of what arrived versus what Redis marked sent."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller
from redis import Redis
from rq import Worker as RqWorker

from sorawatch.commands import endpoints, subscriptions
from sorawatch.events import Event, EventLog, Job, queue
from sorawatch.keys import Keys
from sorawatch.projections import apply, ledger
from sorawatch.testing.alerts import alert_record
from sorawatch.testing.http import HttpReceiver
from sorawatch.testing.smtp import Recorder, SmtpServer
from tests.faults.procs import Proc, wait_for

LANGS = ("en", "ar", "both")


@dataclass
class SlowRecorder(Recorder):
    """The test SMTP server's handler, pausing before each accept, so a batch is
    still sending when the test kills its worker."""

    pause: float = 0.0
    # When each DATA still being handled began (a killed client's included: the server
    # goes on and accepts its message after the pause).
    handling: dict[int, float] = field(default_factory=dict)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.handling[id(envelope)] = time.monotonic()
        try:
            if self.pause:
                import asyncio

                await asyncio.sleep(self.pause)
            return await super().handle_DATA(server, session, envelope)
        finally:
            with self.lock:
                self.handling.pop(id(envelope), None)

    def begun_before(self, moment: float) -> bool:
        """Whether a DATA that began before ``moment`` is still being handled."""
        with self.lock:
            return any(started <= moment for started in self.handling.values())


class SlowSmtp(SmtpServer):
    def __init__(self, pause: float) -> None:
        super().__init__()
        self.recorder = SlowRecorder(pause=pause)
        self.controller = Controller(self.recorder, hostname="127.0.0.1", port=self.port)

    def recipient_counts(self) -> Counter[str]:
        return Counter(r.lower() for m in self.messages for r in m.recipients)


@dataclass
class World:
    log: EventLog
    emails: list[str]
    hooks: dict[str, tuple[str, str]]  # path → (webhook id, secret)
    alert_id: str = ""
    orphans: dict[str, set[str]] = field(default_factory=lambda: {"email": set(), "webhook": set()})


def populate(log: EventLog, rx: HttpReceiver, n_emails: int, n_hooks: int) -> World:
    """Confirmed subscribers in every language preference, and endpoints on ``rx``."""
    emails = [f"s{i:05d}@example.test" for i in range(n_emails)]
    for i, address in enumerate(emails):
        subscriptions.request(log, address, LANGS[i % 3], None, None, confirmed=True)
    hooks = {}
    for i in range(n_hooks):
        path = f"/h/{i}"
        hook, secret = endpoints.register(log, rx.url(path), allow_private=True)
        hooks[path] = (hook.id, secret)
        rx.verify_with(path, secret)
    return World(log, emails, hooks)


def raise_alert(world: World, alert_id: str = "al_fault1") -> Event:
    """Append an ``alert.raised`` with its fan-out job, as the change processing does."""
    record = alert_record(alert_id)
    event = Event.new("alert.raised", record, "fault", alert_id)
    world.log.append(event, [Job.for_event("changes", "sorawatch.workers.fanout.fan_out", event)])
    apply(world.log.redis, world.log.keys, event)
    world.alert_id = alert_id
    return event


def note_orphans(world: World, smtp: SlowSmtp, rx: HttpReceiver) -> int:
    """After a kill: what reached a server but is not marked sent in Redis (accepted
    while the killed worker was between the server's answer and its mark). These are
    the only messages a re-run may send again. Returns how many were added."""
    redis, keys = world.log.redis, world.log.keys
    # A message the killed worker was sending when it died is still accepted by the
    # server after its pause: wait for those, or they would look like duplicates later.
    killed_at = time.monotonic()
    recorder = smtp.recorder
    assert isinstance(recorder, SlowRecorder)
    wait_for(lambda: not recorder.begun_before(killed_at), 30, "the server's DATA in flight")
    got_mail = set(smtp.recipient_counts())
    got_hooks = {world.hooks[r.path][0] for r in rx.requests if r.path in world.hooks}
    # Read the servers first, then the marks: a message the live worker marks in between
    # does not count as an orphan. Marked = a sent mark or a recorded "sent" outcome (a
    # finished batch's marks are dropped once its outcomes are recorded).
    marked_mail = ledger.already_sent(redis, keys, world.alert_id, "email", got_mail)
    marked_hooks = ledger.already_sent(redis, keys, world.alert_id, "webhook", got_hooks)
    before = sum(len(v) for v in world.orphans.values())
    world.orphans["email"] |= got_mail - marked_mail
    world.orphans["webhook"] |= got_hooks - marked_hooks
    return sum(len(v) for v in world.orphans.values()) - before


def idle(
    redis: Redis, keys: Keys | None = None, names: tuple[str, ...] = ("changes", "email", "webhook")
) -> bool:
    """No job queued, running or scheduled on ``names`` (of the deployment ``keys``)."""
    for name in names:
        q = queue(name, redis, keys)
        if q.count or q.started_job_registry.get_job_count(cleanup=False):
            return False
        if q.scheduled_job_registry.get_job_count(cleanup=False):
            return False
    return True


def workers_alive(redis: Redis) -> int:
    """RQ workers registered whose process still exists (killed ones stay registered
    until their key expires)."""
    alive = 0
    for worker in RqWorker.all(connection=redis):
        try:
            os.kill(int(worker.pid or 0), 0)
        except (ProcessLookupError, ValueError):
            continue
        alive += bool(worker.pid)
    return alive


def _parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def busy_on(redis: Redis, parent_pid: int, queue_name: str, keys: Keys) -> bool:
    """True when the RQ worker on ``queue_name`` (of the deployment ``keys``) started by
    ``parent_pid`` (a ``sorawatch work`` process) is running a job right now."""
    full = keys.queue(queue_name)
    for worker in RqWorker.all(connection=redis):
        if worker.queue_names() == [full] and _parent(int(worker.pid or 0)) == parent_pid:
            return worker.get_state() == "busy"
    return False


def reruns(*logs: str) -> int:
    """How many abandoned jobs the restarted workers handed back to RQ (from their logs)."""
    total = 0
    for text in logs:
        for line in text.splitlines():
            if "abandoned by dead workers" in line:
                total += int(line.split("re-running ", 1)[1].split()[0])
    return total


def kill_mid_batch(
    redis: Redis,
    keys: Keys,
    smtp: SlowSmtp,
    thresholds: tuple[int, ...],
    victim: Proc,
    restart: Callable[[int], Proc],
    after_kill: Callable[[], object],
) -> list[Proc]:
    """SIGKILL ``victim`` each time the SMTP server has seen a threshold's number of
    recipients while its email worker is in the middle of a batch; ``after_kill`` notes
    what was in flight, then ``restart(n)`` starts the n-th replacement. Returns the
    replacements started (the last is the victim still running)."""
    started: list[Proc] = []
    for threshold in thresholds:
        wait_for(
            lambda t=threshold, pid=victim.pid: (  # type: ignore[misc]
                len(smtp.recipient_counts()) >= t and busy_on(redis, pid, "email", keys)
            ),
            60,
            f"{threshold} recipients and a busy email worker",
            poll=0.01,
        )
        victim.kill()
        after_kill()
        victim = restart(len(started) + 1)
        started.append(victim)
        wait_for(lambda: workers_alive(redis) >= 6, 60, "the restarted workers")
    return started

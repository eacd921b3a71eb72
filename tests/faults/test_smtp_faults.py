"""Fault 3: the SMTP server is down for a while, then back, and then answers 421/450
to some recipients and 550 to others.

Delivery runs in this process (``sorawatch.workers.worker.burst``, rounds over every queue
with the RQ scheduler for the delayed retries) against a real aiosmtpd server.
Promise: every deliverable message arrives exactly once; each 550 is recorded as
a permanent dead letter after one try and never retried.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable

import pytest
from redis import Redis

from sorawatch.events import EventLog
from sorawatch.projections import ledger
from sorawatch.settings import Settings
from sorawatch.testing.http import HttpReceiver
from sorawatch.testing.smtp import SmtpServer
from sorawatch.workers import worker
from tests.faults.delivery_world import idle, populate, raise_alert
from tests.reliability import Figures
from tests.workers.delivery_helpers import keys_of, with_smtp

pytestmark = pytest.mark.fault

N = 60
TRANSIENT = {i: code for i, code in zip(range(0, 20, 2), [421, 450] * 5, strict=True)}
PERMANENT = {i: 550 for i in range(1, 10, 2)}


STALL = 180  # seconds without any delivery moving: stuck, not slow (a generous bound)


def drain(settings: Settings, redis: Redis, progress: Callable[[], object]) -> None:
    """Run bursts (due retries included) until nothing is queued, running or scheduled.

    No fixed budget (two busy cores make the same work take three times as long):
    it fails only when ``progress()`` has not changed for ``STALL`` seconds."""
    seen, moved = progress(), time.monotonic()
    while True:
        worker.burst(settings, redis)
        if idle(redis):
            return
        now = progress()
        if now != seen:
            seen, moved = now, time.monotonic()
        assert time.monotonic() - moved < STALL, f"no delivery moved in {STALL} s: {now}"
        time.sleep(0.2)  # the next retry is scheduled a moment ahead


def test_smtp_down_then_flaky_every_deliverable_mail_once(
    redis: Redis, settings: Settings, reliability: Figures
) -> None:
    log = EventLog(redis, keys_of(settings))
    smtp = SmtpServer()  # not started: nothing listens on its port yet
    settings = with_smtp(settings, smtp.port, timeout=2.0, deadline=5.0)
    settings = dataclasses.replace(
        settings,
        workers=dataclasses.replace(settings.workers, retry_schedule=[0, 1, 1, 1, 1, 1, 1]),
    )
    with HttpReceiver() as rx:
        world = populate(log, rx, N, 0)
    raise_alert(world)

    # Down: the first attempt finds no server; everything is a transient failure.
    worker.burst(settings, redis)
    failed = ledger.counts(redis, log.keys, world.alert_id, "email")
    assert failed == {"failed": N}, failed

    with smtp:
        for i, code in TRANSIENT.items():
            smtp.script(world.emails[i], [code, code])  # twice, then accepted
        for i, code in PERMANENT.items():
            smtp.refuse(world.emails[i], code)
        drain(
            settings,
            redis,
            lambda: (
                ledger.counts(redis, log.keys, world.alert_id, "email"),
                len(smtp.recorder.answered),
            ),
        )
        answered = list(smtp.recorder.answered)
        received = Counter(r.lower() for m in smtp.messages for r in m.recipients)

    refused = {world.emails[i] for i in PERMANENT}
    deliverable = set(world.emails) - refused
    if set(received) != deliverable:  # say why, so a failure here is explainable
        lost = sorted(deliverable - set(received))
        why = {r: ledger.record(redis, log.keys, world.alert_id, "email", r) for r in lost[:3]}
        tried = [a for a in answered if a[0] in lost[:3]]
        raise AssertionError(f"lost {len(lost)}: {why}; RCPT answers {tried}")
    doubled = {r: n for r, n in received.items() if n > 1}
    assert not doubled, f"sent twice: {doubled}"
    tries = Counter(address for address, _code in answered)
    assert all(tries[r] == 1 for r in refused), "a 550 recipient was tried again"
    assert all(tries[world.emails[i]] == 3 for i in TRANSIENT), "4xx not retried as scripted"

    dead = {d["recipient"]: d for d in ledger.dead_letters(redis, log.keys, world.alert_id)}
    assert set(dead) == refused
    assert all(d["permanent"] and "550" in (d["error"] or "") for d in dead.values())
    counts = ledger.counts(redis, log.keys, world.alert_id, "email")
    assert counts == {"sent": len(deliverable), "abandoned": len(refused)}

    reliability.fault(
        "SMTP down, then 421/450 and 550",
        injected=1 + 2 * len(TRANSIENT) + len(PERMANENT),
        expected=len(deliverable),
        delivered=len(received),
        lost=len(deliverable - set(received)),
        duplicated=sum(n - 1 for n in received.values()),
        bound=0,
    )

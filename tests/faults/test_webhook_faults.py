"""Fault 4: misbehaving webhook endpoints, all at once, and a slow one beside the mail.

One alert goes to five bad endpoints (hanging past the timeout, flapping 500/200,
429 with ``Retry-After``, 410, redirecting) and a good one; each must be handled as
the design says. Then, with a real ``sorawatch work`` (one process per queue), an
endpoint that holds its answer for seconds must not delay the mail or the other
endpoints: they all arrive before the slow endpoint has answered (an order, not a
timing), and the measured times go into the figures.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime
from pathlib import Path

import pytest
from redis import Redis

from sorawatch.events import EventLog
from sorawatch.keys import Keys
from sorawatch.projections import ledger, webhooks
from sorawatch.settings import Settings
from sorawatch.testing.http import HttpReceiver
from sorawatch.workers.webhook import message_id
from tests.faults.delivery_world import SlowSmtp, World, idle, populate, raise_alert, workers_alive
from tests.faults.procs import Proc, wait_for, write_config
from tests.faults.test_smtp_faults import drain
from tests.reliability import Figures
from tests.workers.delivery_helpers import events_of, keys_of

pytestmark = pytest.mark.fault

HANG = 2.5  # seconds the hanging endpoint holds its first answer (timeout: 1 s)
SCRIPTS = {
    "/h/0": [(200, {}, HANG), 200],  # hangs past the timeout once
    "/h/1": [500, 200, 500, 200],  # flaps
    "/h/2": [(429, {"Retry-After": "1"}), 200],  # busy, says when to come back
    "/h/3": [410],  # gone
    "/h/4": [(302, {"Location": "/h/elsewhere"})],  # redirects
    "/h/5": [200],  # fine
}


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def test_bad_endpoints_each_handled_as_designed(
    redis: Redis, settings: Settings, reliability: Figures
) -> None:
    settings = dataclasses.replace(
        settings,
        webhooks=dataclasses.replace(settings.webhooks, timeout=1.0, retry_schedule=[0, 0, 0, 0]),
    )
    log = EventLog(redis, keys_of(settings))
    with HttpReceiver() as rx:
        world = populate(log, rx, 0, len(SCRIPTS))
        for path, answers in SCRIPTS.items():
            rx.script(path, answers)  # type: ignore[arg-type]
        raise_alert(world)
        drain(
            settings,
            redis,
            lambda: {p: ledger.status(redis, log.keys, world.alert_id, "webhook", world.hooks[p][0])
                     for p in SCRIPTS} | {"asked": sum(len(rx.to(p)) for p in SCRIPTS)},
        )  # fmt: skip
        requests = {path: rx.to(path) for path in SCRIPTS}
        strays = rx.to("/h/elsewhere")
    ids = {path: world.hooks[path][0] for path in SCRIPTS}

    def status(path: str) -> str | None:
        return ledger.status(redis, log.keys, world.alert_id, "webhook", ids[path])

    for path, got in requests.items():
        hook_id, _secret = world.hooks[path]
        assert {r.headers["webhook-id"] for r in got} == {message_id(world.alert_id, hook_id)}
        assert all(r.verified == "ok" for r in got), [r.verified for r in got]
    # Hanging: timed out once, retried, delivered.
    assert len(requests["/h/0"]) == 2
    assert status("/h/0") == "sent"
    # Flapping: 500 then 200.
    assert len(requests["/h/1"]) == 2
    assert status("/h/1") == "sent"
    # 429: the retry was scheduled no earlier than Retry-After said.
    assert len(requests["/h/2"]) == 2
    assert status("/h/2") == "sent"
    busy = [
        (e.at, row)
        for e in events_of(log, "delivery.failed")
        for row in e.data["results"]
        if row["recipient"] == ids["/h/2"]
    ]
    assert busy
    assert all(_epoch(row["retry_at"]) >= _epoch(at) + 0.99 for at, row in busy)
    # 410: one request, the endpoint disabled, a permanent dead letter.
    assert len(requests["/h/3"]) == 1
    assert status("/h/3") == "abandoned"
    gone = webhooks.get(redis, log.keys, ids["/h/3"])
    assert gone is not None
    assert not gone.active
    # Redirect: not followed, recorded as a permanent failure.
    assert len(requests["/h/4"]) == 1
    assert not strays
    assert status("/h/4") == "abandoned"
    assert len(requests["/h/5"]) == 1
    assert status("/h/5") == "sent"
    letters = {d["recipient"]: d for d in ledger.dead_letters(redis, log.keys)}
    assert set(letters) == {ids["/h/3"], ids["/h/4"]}
    assert all(d["permanent"] for d in letters.values())

    deliverable = ["/h/0", "/h/1", "/h/2", "/h/5"]
    reliability.fault(
        "webhook endpoints: hang, flap, 429, 410, redirect",
        injected=5,
        expected=len(deliverable),
        delivered=sum(status(p) == "sent" for p in deliverable),
        lost=sum(status(p) != "sent" for p in deliverable),
        duplicated=0,
        bound=0,
    )


def test_a_slow_endpoint_does_not_delay_mail_or_other_endpoints(
    redis_url: str, redis: Redis, tmp_path: Path, reliability: Figures
) -> None:
    hold = 6.0
    log = EventLog(redis, Keys("slow"))
    with SlowSmtp(pause=0.0) as smtp, HttpReceiver() as rx:
        world: World = populate(log, rx, 200, 20)
        rx.script("/h/0", [(200, {}, hold)])  # answers, but only after `hold` seconds
        config = write_config(
            tmp_path / "sorawatch.toml",
            redis_url,
            "slow",
            tmp_path / "data",
            f'[smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\n'
            'from = "Sorawatch <alerts@watch.example.test>"\n\n'
            "[workers]\nbatch_size = 50\n\n"
            "[webhooks]\nallow_private = true\ntimeout = 15\n\n"
            '[log]\nlevel = "WARNING"\n',
        )
        proc = Proc(config, redis_url, "work", log=tmp_path / "work.log")
        try:
            wait_for(lambda: workers_alive(redis) >= 3, 60, "three RQ workers")
            start = time.monotonic()
            raise_alert(world)
            wait_for(lambda: bool(rx.to("/h/0")), 30, "the slow endpoint's request")
            slow_asked = time.monotonic()
            wait_for(lambda: len(smtp.recipient_counts()) >= 200, 30, "all mail", poll=0.01)
            mail_done = time.monotonic()
            fast_paths = [f"/h/{i}" for i in range(1, 20)]
            wait_for(lambda: all(rx.to(p) for p in fast_paths), 30, "fast endpoints", poll=0.01)
            fast_done = time.monotonic()
            wait_for(lambda: idle(redis, Keys("slow")), 30, "the queues to drain", poll=0.1)
            slow_done = time.monotonic()
        finally:
            proc.stop()

    # The slow endpoint was still holding its answer when mail and the others were done.
    assert mail_done < slow_asked + hold, "mail waited for the slow endpoint"
    assert fast_done < slow_asked + hold, "other endpoints waited for the slow one"
    assert ledger.counts(redis, log.keys, world.alert_id, "email") == {"sent": 200}
    assert ledger.counts(redis, log.keys, world.alert_id, "webhook") == {"sent": 20}
    reliability.fault(
        "slow webhook endpoint beside mail",
        injected=1,
        expected=220,
        delivered=200 + 20,
        lost=0,
        duplicated=0,
        bound=0,
    )
    reliability.note(
        f"slow webhook endpoint (answer held {hold:.0f} s): 200 mails done in "
        f"{mail_done - start:.1f} s and 19 other endpoints in {fast_done - start:.1f} s "
        f"after the alert; the slow endpoint's batch finished at {slow_done - start:.1f} s"
    )

"""Fault 1: workers SIGKILLed mid-fan-out, then restarted.

2,000 email subscribers and 200 webhooks; two ``sorawatch work`` processes (each
one RQ worker per queue) send to a real SMTP server (slowed a little, so batches
are still sending when the kills land) and a real HTTP receiver. One of them is
SIGKILLed, with its whole process group, several times while it sends, and
restarted each time. The promise: every recipient gets the alert; duplicates
only among the messages in flight at a kill (accepted by the server, not yet
marked sent); every webhook retry carries the original ``webhook-id``.

Recovery is automatic: RQ jobs carry retries, and a worker starting (or running
its maintenance) re-runs the jobs of workers that died on its host at once
(``sorawatch.workers.worker.expire_abandoned``) and frees their scheduler locks.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from redis import Redis

from sorawatch.events import EventLog
from sorawatch.keys import Keys
from sorawatch.projections import ledger
from sorawatch.testing.http import HttpReceiver
from sorawatch.workers.webhook import message_id
from tests.faults.delivery_world import (
    SlowSmtp,
    idle,
    kill_mid_batch,
    note_orphans,
    populate,
    raise_alert,
    reruns,
    workers_alive,
)
from tests.faults.procs import Proc, wait_for, write_config
from tests.reliability import Figures

pytestmark = [pytest.mark.fault, pytest.mark.slow]

PREFIX = "fk"
N_EMAILS = 2000
N_HOOKS = 200
KILL_AT = (300, 800, 1300)  # kill when the SMTP server has this many recipients


def test_sigkill_mid_fan_out_loses_nothing(
    redis_url: str, redis: Redis, tmp_path: Path, reliability: Figures
) -> None:
    keys = Keys(PREFIX)
    log = EventLog(redis, keys)
    with SlowSmtp(pause=0.01) as smtp, HttpReceiver() as rx:
        world = populate(log, rx, N_EMAILS, N_HOOKS)
        config = write_config(
            tmp_path / "sorawatch.toml",
            redis_url,
            PREFIX,
            tmp_path / "data",
            f'[smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\nconcurrency = 2\n'
            'from = "Sorawatch <alerts@watch.example.test>"\n\n'
            "[workers]\nbatch_size = 100\nretry_schedule = [0, 0, 0]\n\n"
            "[webhooks]\nallow_private = true\ntimeout = 5\nretry_schedule = [0, 0, 0]\n\n"
            '[log]\nlevel = "WARNING"\n',
        )

        def work(name: str) -> Proc:
            return Proc(config, redis_url, "work", log=tmp_path / f"{name}.log")

        victim, steady = work("a"), work("b")
        procs = [victim, steady]
        try:
            wait_for(lambda: workers_alive(redis) >= 6, 60, "six RQ workers")
            raise_alert(world)
            restart = lambda n: work(f"a{n}")  # noqa: E731
            noted = lambda: note_orphans(world, smtp, rx)  # noqa: E731
            procs += kill_mid_batch(redis, keys, smtp, KILL_AT, victim, restart, noted)

            wait_for(
                lambda: (
                    len(smtp.recipient_counts()) >= N_EMAILS
                    and len({r.path for r in rx.requests}) >= N_HOOKS
                ),
                90,
                "every recipient and endpoint",
                poll=0.1,
            )
            wait_for(lambda: idle(redis, keys), 60, "the queues to drain", poll=0.1)
        finally:
            for proc in procs:
                proc.stop()

    # The kills did land mid-job, and the restarted workers re-ran what was abandoned.
    rerun = reruns(*(p.output() for p in procs))
    assert rerun >= 1, "no abandoned job was re-run: the kills missed or recovery is silent"

    received = smtp.recipient_counts()
    wanted = set(world.emails)
    lost = wanted - set(received)
    assert not lost, f"{len(lost)} subscribers never got the alert"
    assert set(received) == wanted
    doubled = {r: n - 1 for r, n in received.items() if n > 1}
    assert set(doubled) <= world.orphans["email"], "a message sent twice was not in flight"
    assert ledger.counts(redis, keys, world.alert_id, "email") == {"sent": N_EMAILS}

    # Webhooks: each endpoint reached; every request for it carries one webhook-id
    # (the same on retries) and a signature its secret verifies.
    hook_dups = 0
    for path, (hook_id, _secret) in world.hooks.items():
        requests = rx.to(path)
        assert requests, f"{path} never received the alert"
        ids = {r.headers["webhook-id"] for r in requests}
        assert ids == {message_id(world.alert_id, hook_id)}
        assert all(r.verified == "ok" for r in requests), [r.verified for r in requests]
        if len(requests) > 1:
            assert hook_id in world.orphans["webhook"]
            hook_dups += len(requests) - 1
    assert ledger.counts(redis, keys, world.alert_id, "webhook") == {"sent": N_HOOKS}

    bound_mail = len(world.orphans["email"])
    reliability.fault(
        "worker SIGKILL mid-fan-out (email)",
        injected=len(KILL_AT),
        expected=N_EMAILS,
        delivered=len(received),
        lost=len(lost),
        duplicated=sum(doubled.values()),
        bound=f"{bound_mail} in flight; {rerun} jobs re-run",
    )
    reliability.fault(
        "worker SIGKILL mid-fan-out (webhook, same webhook-id)",
        injected=len(KILL_AT),
        expected=N_HOOKS,
        delivered=len({r.path for r in rx.requests}),
        lost=0,
        duplicated=hook_dups,
        bound=f"{len(world.orphans['webhook'])} in flight",
    )

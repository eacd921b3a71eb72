"""Fault 1, for digests: a worker SIGKILLed during a digest batch, then restarted.

1,500 daily subscribers (08:00 UTC, every language preference) and three alerts in
their period. At the boundary ``sorawatch digest --enqueue-only`` puts their digests
on the ``email`` queue; two ``sorawatch work`` processes (their clock fixed just after
the boundary) send them to a real SMTP server, slowed a little so batches are still
sending when the kills land. One of them is SIGKILLed, with its whole process group,
while it sends, and restarted each time.

The promise is the alerts' one: every subscriber gets their digest; duplicates only
among the messages in flight at a kill (accepted by the server, not yet marked
sent), each a copy of the same message (same Message-ID); the ledger shows every
digest sent and every subscriber's period done.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from redis import Redis

from sorawatch import clock, schedule
from sorawatch.commands import subscriptions
from sorawatch.events import EventLog, queue
from sorawatch.keys import Keys
from sorawatch.projections import ledger
from sorawatch.projections._common import text
from sorawatch.testing.alerts import raise_alert
from sorawatch.workers.digest import digest_id
from tests.faults.delivery_world import (
    LANGS,
    SlowRecorder,
    SlowSmtp,
    idle,
    kill_mid_batch,
    reruns,
    workers_alive,
)
from tests.faults.procs import Proc, wait_for, write_config
from tests.reliability import Figures

pytestmark = [pytest.mark.fault, pytest.mark.slow]

PREFIX = "dk"
N_SUBSCRIBERS = 1500
KILL_AT = (300, 800)  # kill when the SMTP server has this many recipients
SUBSCRIBED = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
ALERTS = ("2026-12-01T10:00:00Z", "2026-12-01T14:00:00Z", "2026-12-01T18:00:00Z")
BOUNDARY = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)  # 08:00 UTC, the day after
NOW = "2026-12-02T08:00:30Z"  # the clock of every process under test
SUBJECT = "Sora daily digest, 2 December 2026: 3 updates"  # an English digest's


@pytest.fixture(autouse=True)
def real_clock_after() -> Iterator[None]:
    yield
    clock.use(None)


def populate(log: EventLog) -> list[str]:
    """Daily subscribers in every language preference, and the alerts of their period."""
    clock.use(SUBSCRIBED)
    timing = schedule.choose(cadence="daily", tz="UTC", hour=8)
    emails = [f"d{i:05d}@example.test" for i in range(N_SUBSCRIBERS)]
    for i, address in enumerate(emails):
        subscriptions.request(log, address, LANGS[i % 3], None, None, confirmed=True, timing=timing)
    for n, when in enumerate(ALERTS, start=1):
        clock.use(datetime.fromisoformat(when.replace("Z", "+00:00")))
        raise_alert(log, alert_id=f"al_dk{n}", story=f"st_dk{n}", raised_at=when,
                    title=f"Sora story number {n}")  # fmt: skip
    clock.use(None)
    return emails


def note_orphans(redis: Redis, keys: Keys, delivery: str, smtp: SlowSmtp) -> set[str]:
    """After a kill: the recipients whose digest reached the server but is not marked
    sent in Redis (the only ones a re-run may send again)."""
    killed_at = time.monotonic()
    recorder = smtp.recorder
    assert isinstance(recorder, SlowRecorder)
    # The killed worker's last messages are still accepted after the server's pause.
    wait_for(lambda: not recorder.begun_before(killed_at), 30, "the server's DATA in flight")
    got = set(smtp.recipient_counts())  # the server first, then the marks
    return got - ledger.already_sent(redis, keys, delivery, "email", got)


def failed(redis: Redis, keys: Keys) -> int:
    return int(queue("email", redis, keys).failed_job_registry.get_job_count(cleanup=False))


def test_sigkill_mid_digest_batch_loses_nothing(
    redis_url: str, redis: Redis, tmp_path: Path, reliability: Figures
) -> None:
    keys = Keys(PREFIX)
    log = EventLog(redis, keys)
    delivery = digest_id(BOUNDARY)
    emails = populate(log)
    orphans: set[str] = set()
    smtp = SlowSmtp(pause=0.01)
    with smtp:
        config = write_config(
            tmp_path / "sorawatch.toml",
            redis_url,
            PREFIX,
            tmp_path / "data",
            f'[smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\nconcurrency = 2\n'
            'from = "Sorawatch <alerts@watch.example.test>"\n\n'
            "[workers]\nbatch_size = 100\nretry_schedule = [0, 0, 0]\n\n"
            '[log]\nlevel = "WARNING"\n',
        )
        # A top-level setting goes before the first table.
        config.write_text(f'now = "{NOW}"\n' + config.read_text("utf-8"), "utf-8")

        # Queued before any worker runs, so no worker's own tick holds the lease.
        enqueue = Proc(config, redis_url, "digest", "--enqueue-only", log=tmp_path / "tick.log")
        assert enqueue.wait(60) == 0, enqueue.output()
        assert f"digests due: {N_SUBSCRIBERS} subscriber(s) in 15 batch(es)" in enqueue.output()

        def work(name: str) -> Proc:
            return Proc(config, redis_url, "work", log=tmp_path / f"{name}.log")

        victim, steady = work("a"), work("b")
        procs = [victim, steady]
        try:
            wait_for(lambda: workers_alive(redis) >= 6, 60, "six RQ workers")

            def noted() -> None:
                orphans.update(note_orphans(redis, keys, delivery, smtp))

            restart = lambda n: work(f"a{n}")  # noqa: E731
            procs += kill_mid_batch(redis, keys, smtp, KILL_AT, victim, restart, noted)

            wait_for(
                lambda: len(smtp.recipient_counts()) >= N_SUBSCRIBERS,
                90,
                "every subscriber's digest",
                poll=0.1,
            )
            wait_for(lambda: idle(redis, keys), 60, "the queues to drain", poll=0.1)
        finally:
            for proc in procs:
                proc.stop()

    # The kills did land mid-job, and the restarted workers re-ran what was abandoned.
    rerun = reruns(*(p.output() for p in procs))
    assert rerun >= 1, "no abandoned job was re-run: the kills missed or recovery is silent"
    assert failed(redis, keys) == 0

    received = smtp.recipient_counts()
    lost = set(emails) - set(received)
    assert not lost, f"{len(lost)} subscribers never got their digest"
    assert set(received) == set(emails)
    doubled = {r: n - 1 for r, n in received.items() if n > 1}
    beyond = set(doubled) - orphans
    assert not beyond, f"digests sent twice that were not in flight: {sorted(beyond)[:5]}"

    # A duplicate is the same message again; an English digest tells the three alerts.
    ids: dict[str, set[str]] = {}
    for got in smtp.messages:
        for rcpt in got.recipients:
            ids.setdefault(rcpt.lower(), set()).add(str(got.message["Message-ID"]))
            if LANGS[int(rcpt[1:6]) % 3] == "en":  # d00042@...: the 42nd subscriber
                assert got.message["Subject"] == SUBJECT
    assert all(len(found) == 1 for found in ids.values())

    # The ledger: every digest sent, every period done, none dead.
    unrecorded = set(emails) - ledger.already_sent(redis, keys, delivery, "email", emails)
    assert not unrecorded, (
        f"{len(unrecorded)} digests reached the server but the ledger holds no sent record "
        f"({len(unrecorded & orphans)} of them in flight at a kill): "
        + ", ".join(
            f"{e} (received {received[e]}, period done: {bool(redis.hexists(keys.digest_sent(), e))})"
            for e in sorted(unrecorded)[:5]
        )
    )
    assert ledger.counts(redis, keys, delivery, "email") == {"sent": N_SUBSCRIBERS}
    assert ledger.dead_letters(redis, keys, alert_id=delivery) == []
    ends = {text(k): float(text(v)) for k, v in redis.hgetall(keys.digest_sent()).items()}
    assert ends == dict.fromkeys(emails, BOUNDARY.timestamp())

    reliability.fault(
        "worker SIGKILLed mid-digest batch",
        injected=len(KILL_AT),
        expected=N_SUBSCRIBERS,
        delivered=len(received),
        lost=len(lost),
        duplicated=sum(doubled.values()),
        bound=f"{len(orphans)} in flight; {rerun} jobs re-run",
    )

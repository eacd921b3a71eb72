"""`sorawatch work` as real processes: SIGTERM stops it cleanly; SIGKILL mid-batch
loses at most the message in flight, and the re-run sends the rest once."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from redis import Redis

from sorawatch.events import EventLog, job_id, queue
from sorawatch.projections import ledger
from sorawatch.settings import Settings
from sorawatch.testing.alerts import raise_alert
from sorawatch.testing.smtp import SmtpServer
from tests.workers.delivery_helpers import events_of, keys_of, subscribe

pytestmark = pytest.mark.fault


def write_config(path: Path, settings: Settings, smtp_port: int | None) -> Path:
    smtp = (
        f'[smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\nconcurrency = 1\n'
        'from = "Sorawatch <alerts@watch.example.test>"\n\n'
        if smtp_port
        else ""
    )
    path.write_text(
        f'[redis]\nurl = "{settings.redis.url}"\nprefix = "{settings.redis.prefix}"\n\n'
        f'{smtp}[web]\nbase_url = "https://watch.example.test"\nsecret = "test-secret-test-secret-test-secret"\n\n'
        f"[workers]\nretry_schedule = [0, 0, 0]\n\n"
        f'[data]\ndir = "{settings.data_dir}"\n\n'
        '[[feeds]]\nurl = "http://127.0.0.1:9/none.xml"\nname = "unused"\n',
        encoding="utf-8",
    )
    return path


def start(config: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SORAWATCH_")}
    return subprocess.Popen(
        [sys.executable, "-m", "sorawatch.cli", "-c", str(config), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, so the test can kill it all
    )


def stop_cleanly(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, and the command must end by itself with 0 (what it said, if not)."""
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=60)
    assert code == 0, proc.stderr.read().decode("utf-8", "replace")[-4000:]  # type: ignore[union-attr]


def wait_for(check: object, what: str, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


def test_sigterm_stops_the_workers_cleanly(
    redis: Redis, settings: Settings, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "c.toml", settings, None)
    log = EventLog(redis, keys_of(settings))
    subscribe(log, "en@example.test", "en")
    _, event = raise_alert(log)
    proc = start(config, "work")
    try:
        queue("changes", redis).enqueue_call("sorawatch.workers.fanout.fan_out", args=(event.id,))
        wait_for(lambda: list(settings.outbox_dir.glob("*.eml")), "the mail in the outbox")
        stop_cleanly(proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert ledger.status(redis, log.keys, "al_test1", "email", "en@example.test") == "sent"


def _worker_pid(redis: Redis, queue_name: str) -> int | None:
    """The pid of a live RQ worker registered on ``queue_name``, if any."""
    for key in redis.smembers("rq:workers"):
        fields = redis.hmget(key, ["queues", "pid", "death"])
        queues, pid, death = (v.decode() if v else None for v in fields)
        if queues == queue_name and pid and not death:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), 0)
                return int(pid)
    return None


def test_a_worker_that_dies_is_started_again(
    redis: Redis, settings: Settings, tmp_path: Path
) -> None:
    """A queue whose worker process died (killed, or RQ quitting on an error it does not
    know) must not sit unserved while the others run on."""
    config = write_config(tmp_path / "c.toml", settings, None)
    log = EventLog(redis, keys_of(settings))
    subscribe(log, "en@example.test", "en")
    _, event = raise_alert(log)
    changes = queue("changes", redis)
    proc = start(config, "work")
    try:
        wait_for(lambda: _worker_pid(redis, changes.name), "the changes worker")
        first = _worker_pid(redis, changes.name)
        assert first is not None
        os.kill(first, signal.SIGKILL)
        # Enqueued once the new worker is there: a job pushed while Redis still thinks
        # the dead one waits on the queue would go to it (RQ's own cleanup re-runs such
        # a job, a minute or two later: another matter).
        wait_for(lambda: _worker_pid(redis, changes.name) not in (None, first), "a new worker")
        changes.enqueue_call("sorawatch.workers.fanout.fan_out", args=(event.id,))
        try:
            wait_for(lambda: list(settings.outbox_dir.glob("*.eml")), "the mail in the outbox")
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)
            _, err = proc.communicate(timeout=30)
            pytest.fail(f"no mail; `work` said:\n{err.decode('utf-8', 'replace')[-4000:]}")
        stop_cleanly(proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_sigkill_mid_batch_resends_nothing_that_was_sent(
    smtp: SmtpServer, redis: Redis, settings: Settings, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "c.toml", settings, smtp.port)
    log = EventLog(redis, keys_of(settings))
    people = [f"u{i:02d}@example.test" for i in range(12)]
    for address in people:
        subscribe(log, address, "en")
    raise_alert(log)
    smtp.recorder.delay = 0.1
    jid = job_id("email", "al_test1", "b00000")
    queue("email", redis).enqueue_call(
        "sorawatch.workers.email.deliver_email", args=("al_test1", people, 0), job_id=jid
    )
    proc = start(config, "work", "--burst", "--queues", "email")
    try:
        wait_for(lambda: len(smtp.messages) >= 4, "a few messages")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    killed_at = len(smtp.messages)
    assert killed_at < len(people), "the batch finished before the kill; slow the server down"
    assert events_of(log, "delivery.succeeded") == []  # died before its batch event

    # RQ re-runs the abandoned job (same id, same arguments).
    smtp.recorder.delay = 0.0
    queue("email", redis).enqueue_call(
        "sorawatch.workers.email.deliver_email", args=("al_test1", people, 0), job_id=jid
    )
    rerun = start(config, "work", "--burst", "--queues", "email")
    _, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err

    received = Counter(r for m in smtp.messages for r in m.recipients)
    assert set(received) == set(people)  # everyone got the alert
    doubled = [r for r, n in received.items() if n > 1]
    assert len(doubled) <= 1  # at most the one message in flight at the kill (concurrency 1)
    assert all(ledger.status(redis, log.keys, "al_test1", "email", p) == "sent" for p in people)
    recorded = [
        r["recipient"] for e in events_of(log, "delivery.succeeded") for r in e.data["results"]
    ]
    assert sorted(recorded) == sorted(people)

"""Channels: the registry the fan-out, retries and workers go through, and a third
channel (``log``) that is one module plus one line of registration."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from redis import Redis

from sorawatch import jobs
from sorawatch.events import EventLog, queue
from sorawatch.projections import ledger
from sorawatch.settings import Settings
from sorawatch.testing.alerts import raise_alert
from sorawatch.workers import channels, fanout, retry, worker
from sorawatch.workers.channels import log as log_channel
from tests.workers.delivery_helpers import (
    events_of,
    failed_jobs,
    keys_of,
    run_jobs,
    setup_runtime,
    subscribe,
)


@pytest.fixture
def with_log() -> Iterator[None]:
    channels.register(log_channel.CHANNEL)  # the one line a new channel needs
    try:
        yield
    finally:
        channels.unregister("log")


def test_the_registry_is_email_and_webhooks_and_agrees_with_the_core() -> None:
    assert [c.name for c in channels.registered()] == ["email", "webhook"]
    assert [c.job for c in channels.registered()] == list(jobs.CHANNELS.values())
    assert worker.QUEUES == ("changes", "email", "webhook")
    with pytest.raises(KeyError):
        channels.get("log")


def test_each_channel_sizes_its_jobs_timeout(settings: Settings) -> None:
    per_mail = settings.smtp.deadline * 2 / settings.smtp.concurrency
    assert retry.job_timeout(settings, "email", 2 * settings.smtp.concurrency) == int(
        per_mail * settings.smtp.concurrency + 120
    )
    hooks = settings.webhooks
    assert retry.job_timeout(settings, "webhook", 1) == int(hooks.timeout * 2 + 120)


@pytest.mark.usefixtures("with_log")
def test_a_registered_log_channel_delivers_each_alert_once_and_the_ledger_says_so(
    redis: Redis, settings: Settings
) -> None:
    setup_runtime(settings, redis)
    log = EventLog(redis, keys_of(settings))
    subscribe(log, "reader@example.test", "en")
    record, event = raise_alert(log)

    assert jobs.queues() == ("changes", "email", "webhook", "log")
    assert fanout.fan_out(event.id) == {"email": 1, "webhook": 0, "log": 1}
    [job] = queue("log", redis).get_jobs()
    assert (job.func_name, job.args) == (jobs.DELIVER_LOG, ["al_test1", ["log"], 0])
    assert fanout.fan_out(event.id) == {"email": 0, "webhook": 0, "log": 0}  # once

    run_jobs(redis, ("log",))
    run_jobs(redis, ("log",))  # nothing left to run twice
    job.perform()  # and a re-run of the job itself (a worker killed after it) writes nothing
    assert failed_jobs(redis, ("log",)) == []

    lines = log_channel.path(settings).read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["alert_id"] for line in lines] == ["al_test1"]
    assert json.loads(lines[0])["title"] == record["title"]
    assert ledger.status(redis, log.keys, "al_test1", "log", "log") == "sent"
    assert ledger.counts(redis, log.keys, "al_test1", "log") == {"sent": 1}
    [succeeded] = [e for e in events_of(log, "delivery.succeeded") if e.data["channel"] == "log"]
    assert [r["recipient"] for r in succeeded.data["results"]] == ["log"]
    assert queue("email", redis).count == 1  # the other channels went on as before

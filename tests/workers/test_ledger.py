"""The delivery ledger: rebuilt by replay, dead letters listed and retried by hand."""

from __future__ import annotations

import json

from click.testing import CliRunner
from redis import Redis

from sorawatch.cli.main import cli
from sorawatch.events import Event, EventLog
from sorawatch.projections import apply, ledger
from sorawatch.projections.replay import replay
from sorawatch.settings import Settings
from sorawatch.testing.alerts import raise_alert
from sorawatch.testing.smtp import SmtpServer
from sorawatch.workers.fanout import fan_out
from tests.workers.delivery_helpers import (
    events_of,
    keys_of,
    mark_sent,
    run_jobs,
    setup_runtime,
    subscribe,
    with_smtp,
)


def snapshot(redis: Redis, settings: Settings) -> dict[str, object]:
    out: dict[str, object] = {}
    for key in sorted(redis.scan_iter(match=keys_of(settings).projection("ledger") + "*")):
        out[key.decode()] = {k.decode(): json.loads(v) for k, v in redis.hgetall(key).items()}
    return out


def deliver_with_one_refusal(smtp: SmtpServer, redis: Redis, settings: Settings) -> EventLog:
    settings = with_smtp(settings, smtp.port)
    setup_runtime(settings, redis)
    log = EventLog(redis, keys_of(settings))
    for address in ("a@example.test", "b@example.test", "gone@example.test"):
        subscribe(log, address, "en")
    smtp.refuse("gone@example.test", 550)
    _, event = raise_alert(log)
    fan_out(event.id)
    run_jobs(redis)
    return log


def test_replay_rebuilds_the_ledger(smtp: SmtpServer, redis: Redis, settings: Settings) -> None:
    log = deliver_with_one_refusal(smtp, redis, settings)
    before = snapshot(redis, settings)
    assert before  # something was recorded
    assert ledger.counts(redis, log.keys, "al_test1", "email") == {"sent": 2, "abandoned": 1}
    replay(redis, log.keys, log)
    assert snapshot(redis, settings) == before


def test_dead_letter_retried_by_hand_is_delivered(
    smtp: SmtpServer, redis: Redis, settings: Settings
) -> None:
    log = deliver_with_one_refusal(smtp, redis, settings)
    [letter] = ledger.dead_letters(redis, log.keys)
    smtp.clear()  # the mailbox exists again
    env = {
        "SORAWATCH_REDIS_URL": settings.redis.url or "",
        "SORAWATCH_REDIS_PREFIX": settings.redis.prefix,
    }
    runner = CliRunner()
    listed = runner.invoke(cli, ["deadletters", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output.splitlines()[0])["id"] == letter["id"]
    missing = runner.invoke(cli, ["deadletters", "--retry", "dl_nope"], env=env)
    assert missing.exit_code == 1
    result = runner.invoke(cli, ["deadletters", "--retry", letter["id"]], env=env)
    assert result.exit_code == 0, result.output
    assert "requeued 1 delivery" in result.output
    assert ledger.dead_letters(redis, log.keys) == []
    assert ledger.status(redis, log.keys, "al_test1", "email", "gone@example.test") == "retrying"
    run_jobs(redis)
    assert [m.recipients for m in smtp.messages] == [["gone@example.test"]]
    assert ledger.status(redis, log.keys, "al_test1", "email", "gone@example.test") == "sent"
    assert len(events_of(log, "delivery.retried")) == 1
    # And replay agrees with what the live system built.
    before = snapshot(redis, settings)
    replay(redis, log.keys, log)
    assert snapshot(redis, settings) == before


def test_a_late_failure_never_unsends(redis: Redis, settings: Settings) -> None:
    log = EventLog(redis, keys_of(settings))
    ok = Event.new(
        "delivery.succeeded",
        {"alert_id": "al_x", "channel": "webhook",
         "results": [{"recipient": "wh_1", "outcome": "sent", "attempt": 1}]},
        "ok",
    )  # fmt: skip
    late = Event.new(
        "delivery.failed",
        {"alert_id": "al_x", "channel": "webhook",
         "results": [{"recipient": "wh_1", "outcome": "failed", "error": "HTTP 500", "attempt": 0}]},
        "late",
    )  # fmt: skip
    for event in (ok, late):
        log.append(event)
        apply(redis, log.keys, event)
    assert ledger.status(redis, log.keys, "al_x", "webhook", "wh_1") == "sent"
    assert ledger.pending(redis, log.keys) == []


def test_sent_marks_count_before_the_batch_event(redis: Redis, settings: Settings) -> None:
    keys = keys_of(settings)
    assert ledger.status(redis, keys, "al_x", "email", "a@example.test") is None
    mark_sent(settings, "al_x", "email", "a@example.test")
    assert ledger.status(redis, keys, "al_x", "email", "a@example.test") == "sent"
    assert ledger.already_sent(
        redis, keys, "al_x", "email", ["a@example.test", "b@example.test"]
    ) == {"a@example.test"}

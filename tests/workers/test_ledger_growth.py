"""Delivery records that do not grow without bound.

After an alert is delivered, what stays is what operators and replay need: counts per
status, dead letters, pending retries. The sent marks of a finished batch are gone,
the per-recipient outcomes are compact and expire ``OUTCOME_TTL`` after the alert's
last delivery event, and replay rebuilds exactly that (expiry included), from the log.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from redis import Redis

from sorawatch.events import Event, EventLog
from sorawatch.projections import apply, ledger
from sorawatch.projections.replay import replay
from sorawatch.settings import Settings
from sorawatch.testing.alerts import raise_alert
from sorawatch.testing.smtp import SmtpServer
from sorawatch.workers.fanout import fan_out
from tests.workers.delivery_helpers import keys_of, run_jobs, setup_runtime, subscribe, with_smtp
from tests.workers.test_ledger import snapshot

ADDRESSES = [f"reader{i:02d}@example.test" for i in range(12)]


def deliver(smtp: SmtpServer, redis: Redis, settings: Settings) -> EventLog:
    settings = with_smtp(settings, smtp.port)
    setup_runtime(settings, redis)
    log = EventLog(redis, keys_of(settings))
    for address in ADDRESSES:
        subscribe(log, address, "en")
    smtp.refuse(ADDRESSES[0], 550)
    _, event = raise_alert(log)
    fan_out(event.id)
    run_jobs(redis)
    return log


def outcomes_key(log: EventLog) -> str:
    return log.keys.projection("ledger") + ":o:al_test1:email"


def test_a_finished_alert_keeps_counts_and_dead_letters_and_drops_its_marks(
    smtp: SmtpServer, redis: Redis, settings: Settings
) -> None:
    log = deliver(smtp, redis, settings)
    keys = log.keys
    assert len(smtp.messages) == len(ADDRESSES) - 1
    assert ledger.counts(redis, keys, "al_test1", "email") == {"sent": 11, "abandoned": 1}
    assert [d["recipient"] for d in ledger.dead_letters(redis, keys)] == [ADDRESSES[0]]
    # The immediate sent marks were only needed until the batch event was written.
    assert redis.hlen(keys.sent_marks("al_test1", "email")) == 0
    # Still readable per recipient (a re-run must find who was sent) ...
    assert ledger.status(redis, keys, "al_test1", "email", ADDRESSES[1]) == "sent"
    record = ledger.record(redis, keys, "al_test1", "email", ADDRESSES[1])
    assert record is not None
    assert record["recipient"] == ADDRESSES[1]
    assert record["id"] == ledger.letter_id("al_test1", "email", ADDRESSES[1])
    # ... but only for OUTCOME_TTL after the last delivery event.
    expires = int(redis.pexpiretime(outcomes_key(log)))
    last = datetime.now(UTC) + timedelta(seconds=ledger.OUTCOME_TTL)
    assert 0 < expires <= last.timestamp() * 1000
    # A re-run of the batch sends nothing again.
    run_jobs(redis)
    assert len(smtp.messages) == len(ADDRESSES) - 1


def test_replay_rebuilds_the_same_expiring_outcomes(
    smtp: SmtpServer, redis: Redis, settings: Settings
) -> None:
    log = deliver(smtp, redis, settings)
    before = snapshot(redis, settings)
    expires = redis.pexpiretime(outcomes_key(log))
    replay(redis, log.keys, log)
    assert snapshot(redis, settings) == before
    assert redis.pexpiretime(outcomes_key(log)) == expires


def test_outcomes_of_an_alert_finished_long_ago_are_gone_counts_and_letters_stay(
    redis: Redis, settings: Settings
) -> None:
    setup_runtime(settings, redis)
    log = EventLog(redis, keys_of(settings))
    keys = log.keys
    raise_alert(log)
    long_ago = (datetime.now(UTC) - timedelta(days=30)).isoformat().replace("+00:00", "Z")
    rows = [{"recipient": f"r{i}@example.test", "outcome": "sent", "attempt": 0} for i in range(5)]
    dead = [{"recipient": "x@example.test", "outcome": "abandoned", "error": "550 no", "attempt": 2,
             "permanent": True}]  # fmt: skip
    for name, results in (("delivery.succeeded", rows), ("delivery.abandoned", dead)):
        data = {"alert_id": "al_test1", "channel": "email", "results": results, "attempt": 0,
                "batch": "b1"}  # fmt: skip
        event = Event.new(name, data, "al_test1", name, at=long_ago)
        log.append(event)
        apply(redis, keys, event)
    assert not redis.exists(outcomes_key(log))
    assert ledger.counts(redis, keys, "al_test1", "email") == {"abandoned": 1, "sent": 5}
    assert [d["recipient"] for d in ledger.dead_letters(redis, keys)] == ["x@example.test"]
    before = snapshot(redis, settings)
    replay(redis, keys, log)
    assert snapshot(redis, settings) == before

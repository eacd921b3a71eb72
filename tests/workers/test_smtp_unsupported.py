"""A server that cannot take one recipient's message (no SMTPUTF8 for an address from a
log written before addresses had to be ASCII): that recipient fails for good, after
one try, and the rest of the batch is delivered."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redis import Redis

from sorawatch.events import Event, EventLog
from sorawatch.projections import apply, ledger
from sorawatch.settings import Settings
from sorawatch.testing.alerts import raise_alert
from sorawatch.testing.smtp import SmtpServer
from sorawatch.workers.fanout import fan_out
from tests.workers.delivery_helpers import keys_of, run_jobs, setup_runtime, subscribe, with_smtp

OLD = "\u00fcber@example.test"  # accepted by an older version; this server lacks SMTPUTF8


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer(smtputf8=False) as server:
        yield server


def test_smtp_not_supported_is_permanent_for_that_recipient_only(
    smtp: SmtpServer, redis: Redis, settings: Settings
) -> None:
    log = EventLog(redis, keys_of(settings))
    settings = with_smtp(settings, smtp.port)
    setup_runtime(settings, redis)
    for address in ("a@example.test", "b@example.test"):
        subscribe(log, address, "en")
    data = {"email": OLD, "lang": "en", "topics": ["status", "pricing", "partnership"],
            "kinds": ["change", "news"], "confirmed": True, "requested_at": "2025-01-01T00:00:00Z"}  # fmt: skip
    legacy = Event.new("subscriber.requested", data, OLD, "old")
    log.append(legacy)
    apply(redis, log.keys, legacy)
    _, event = raise_alert(log)
    fan_out(event.id)
    run_jobs(redis)
    assert sorted(r for m in smtp.messages for r in m.recipients) == [
        "a@example.test",
        "b@example.test",
    ]
    assert ledger.status(redis, log.keys, "al_test1", "email", OLD) == "abandoned"
    [letter] = ledger.dead_letters(redis, log.keys)
    assert letter["recipient"] == OLD
    assert letter["permanent"] is True
    assert letter["attempt"] == 0  # not retried

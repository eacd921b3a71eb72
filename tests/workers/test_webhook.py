"""Signed webhook delivery against a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator

import pytest
from redis import Redis
from standardwebhooks import Webhook as Verifier
from standardwebhooks.exceptions import WebhookVerificationError

from sorawatch import netguard
from sorawatch.commands import endpoints
from sorawatch.errors import ValidationError
from sorawatch.events import EventLog
from sorawatch.projections import ledger, webhooks
from sorawatch.settings import Settings
from sorawatch.testing.alerts import raise_alert
from sorawatch.testing.http import HttpReceiver, Request
from sorawatch.workers import webhook as webhook_jobs
from sorawatch.workers.fanout import fan_out
from tests.workers.delivery_helpers import events_of, failed_jobs, keys_of, run_jobs, setup_runtime


@pytest.fixture
def rx() -> Iterator[HttpReceiver]:
    with HttpReceiver() as receiver:
        yield receiver


@pytest.fixture
def log(redis: Redis, settings: Settings) -> EventLog:
    setup_runtime(settings, redis)
    return EventLog(redis, keys_of(settings))


def register(log: EventLog, url: str, **options: object) -> tuple[webhooks.Webhook, str]:
    return endpoints.register(log, url, allow_private=True, **options)  # type: ignore[arg-type]


def verify(secret: str, request: Request) -> dict[str, object]:
    data = Verifier(secret).verify(request.body.decode("utf-8"), request.headers)
    assert isinstance(data, dict)
    return data


def test_payload_is_signed_and_verifies(rx: HttpReceiver, redis: Redis, log: EventLog) -> None:
    hook, secret = register(log, rx.url("/a"))
    other, other_secret = register(log, rx.url("/b"), lang="ar")
    register(log, rx.url("/news-only"), kinds=["news"])
    _, event = raise_alert(log)
    fan_out(event.id)
    run_jobs(redis)
    assert failed_jobs(redis) == []
    [req] = rx.to("/a")
    body = verify(secret, req)
    assert body["type"] == "sora.pricing.changed"
    assert body["timestamp"] == "2025-02-03T10:05:00Z"
    data = body["data"]
    assert isinstance(data, dict)
    assert data["alert_id"] == "al_test1"
    assert data["topic"] == "pricing"
    assert data["kind"] == "change"
    assert data["before"] is None
    assert data["after"] == {
        "plan": "ChatGPT Plus",
        "amount": 20,
        "currency": "USD",
        "period": "month",
    }
    assert data["headline"] == {
        "en": "Sora pricing: ChatGPT Plus $20/month",
        "ar": data["headline"]["ar"],  # type: ignore[index]
    }
    assert "أسعار سورا" in data["headline"]["ar"]  # type: ignore[index]
    assert set(data["summary"]) == {"en", "ar"}  # type: ignore[arg-type]
    assert data["sources"][0]["language"] == "en"  # type: ignore[index]
    assert req.headers["content-type"] == "application/json"
    # Arabic stays readable on the wire (ensure_ascii=False).
    assert "أسعار سورا".encode() in req.body
    # The other endpoint verifies with its own secret, not this one.
    [req_b] = rx.to("/b")
    verify(other_secret, req_b)
    with pytest.raises(WebhookVerificationError):
        Verifier(secret).verify(req_b.body.decode(), req_b.headers)
    assert rx.to("/news-only") == []
    assert ledger.status(redis, log.keys, "al_test1", "webhook", hook.id) == "sent"
    assert ledger.status(redis, log.keys, "al_test1", "webhook", other.id) == "sent"
    # Re-running the fan-out and the batch sends nothing more.
    fan_out(event.id)
    webhook_jobs.deliver_webhooks("al_test1", [hook.id, other.id], 0)
    run_jobs(redis)
    assert len(rx.requests) == 2


def test_500_twice_then_200_is_delivered_with_one_id(
    rx: HttpReceiver, redis: Redis, log: EventLog
) -> None:
    hook, secret = register(log, rx.url("/flaky"))
    rx.script("/flaky", [500, 503, 200])
    _, event = raise_alert(log)
    fan_out(event.id)
    run_jobs(redis)
    requests = rx.to("/flaky")
    assert len(requests) == 3
    assert len({r.headers["webhook-id"] for r in requests}) == 1
    for r in requests:
        verify(secret, r)
    assert ledger.status(redis, log.keys, "al_test1", "webhook", hook.id) == "sent"
    assert [e.type for e in events_of(log, "delivery.failed", "delivery.succeeded")] == [
        "delivery.failed",
        "delivery.failed",
        "delivery.succeeded",
    ]
    assert webhooks.get(redis, log.keys, hook.id).active  # type: ignore[union-attr]


def test_429_honours_retry_after_and_retries(rx: HttpReceiver, redis: Redis, log: EventLog) -> None:
    hook, _ = register(log, rx.url("/busy"))
    rx.script("/busy", [(429, {"Retry-After": "0"}), 200])
    _, event = raise_alert(log)
    fan_out(event.id)
    run_jobs(redis)
    assert len(rx.to("/busy")) == 2
    assert ledger.status(redis, log.keys, "al_test1", "webhook", hook.id) == "sent"


def test_410_disables_the_endpoint(rx: HttpReceiver, redis: Redis, log: EventLog) -> None:
    hook, _ = register(log, rx.url("/gone"))
    rx.script("/gone", [410])
    _, event = raise_alert(log)
    fan_out(event.id)
    run_jobs(redis)
    assert len(rx.to("/gone")) == 1
    found = webhooks.get(redis, log.keys, hook.id)
    assert found is not None
    assert found.active is False
    assert found.disabled_reason == "410 Gone"
    assert ledger.status(redis, log.keys, "al_test1", "webhook", hook.id) == "abandoned"
    # The next alert is not sent to it at all.
    _, second = raise_alert(log, alert_id="al_test2")
    fan_out(second.id)
    run_jobs(redis)
    assert len(rx.to("/gone")) == 1


def test_redirects_are_not_followed(rx: HttpReceiver, redis: Redis, log: EventLog) -> None:
    hook, _ = register(log, rx.url("/moved"))
    rx.script("/moved", [(302, {"Location": rx.url("/elsewhere")})])
    raise_alert(log)
    webhook_jobs.deliver_webhooks("al_test1", [hook.id], 0)
    assert [r.path for r in rx.requests] == ["/moved"]
    [letter] = ledger.dead_letters(redis, log.keys)
    assert letter["error"] == "HTTP 302"


def test_endpoint_failing_too_long_is_disabled(
    rx: HttpReceiver, redis: Redis, settings: Settings, log: EventLog
) -> None:
    settings = dataclasses.replace(
        settings, webhooks=dataclasses.replace(settings.webhooks, disable_after=0)
    )
    setup_runtime(settings, redis)
    hook, _ = register(log, rx.url("/down"))
    rx.script("/down", [500])
    raise_alert(log)
    webhook_jobs.deliver_webhooks("al_test1", [hook.id], 0)
    found = webhooks.get(redis, log.keys, hook.id)
    assert found is not None
    assert found.active is False
    assert "failing since" in str(found.disabled_reason)
    run_jobs(redis)  # the scheduled retry finds the endpoint disabled and sends nothing
    assert len(rx.to("/down")) == 1


def test_a_slow_endpoint_times_out_without_holding_up_the_others(
    rx: HttpReceiver, redis: Redis, settings: Settings, log: EventLog
) -> None:
    settings = dataclasses.replace(
        settings,
        webhooks=dataclasses.replace(settings.webhooks, timeout=0.3, retry_schedule=[0]),
    )
    setup_runtime(settings, redis)
    slow, _ = register(log, rx.url("/slow"))
    fast, _ = register(log, rx.url("/fast"))
    rx.script("/slow", [(200, {}, 1.0)])
    raise_alert(log)
    webhook_jobs.deliver_webhooks("al_test1", [slow.id, fast.id], 0)
    assert ledger.status(redis, log.keys, "al_test1", "webhook", fast.id) == "sent"
    record = ledger.record(redis, log.keys, "al_test1", "webhook", slow.id)
    assert record is not None
    assert record["status"] == "abandoned"
    assert str(record["error"]).startswith("timeout")


def test_private_targets_are_refused_at_send_time(
    rx: HttpReceiver, redis: Redis, settings: Settings, log: EventLog
) -> None:
    hook, _ = register(log, rx.url("/inside"))  # registered while private was allowed
    settings = dataclasses.replace(
        settings, webhooks=dataclasses.replace(settings.webhooks, allow_private=False)
    )
    setup_runtime(settings, redis)
    raise_alert(log)
    webhook_jobs.deliver_webhooks("al_test1", [hook.id], 0)
    assert rx.requests == []
    [letter] = ledger.dead_letters(redis, log.keys)
    assert letter["permanent"] is True
    assert "inside the network" in letter["error"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://localhost:8080/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
        "http://224.0.0.1/hook",
    ],
)
def test_netguard_refuses_inside_addresses(url: str) -> None:
    with pytest.raises(ValidationError, match="inside the network"):
        netguard.check_url(url, allow_private=False)
    netguard.check_url(url, allow_private=True)


@pytest.mark.parametrize("url", ["ftp://example.test/x", "file:///etc/passwd", "http:///nohost"])
def test_netguard_refuses_other_schemes_and_hostless(url: str) -> None:
    with pytest.raises(ValidationError):
        netguard.check_url(url, allow_private=True)


def test_netguard_public_addresses() -> None:
    assert netguard.is_public("93.184.216.34")
    assert netguard.is_public("2606:2800:220:1:248:1893:25c8:1946")
    assert not netguard.is_public("100.64.0.1")  # carrier-grade NAT
    assert not netguard.is_public("fd00::1")


def test_payload_types() -> None:
    base = {"alert_id": "a", "raised_at": "2025-01-01T00:00:00Z", "sources": []}
    kinds = {
        ("status", "change"): "sora.status.changed",
        ("pricing", "change"): "sora.pricing.changed",
        ("partnership", "change"): "sora.partnership.announced",
        ("status", "news"): "sora.news",
        ("partnership", "news"): "sora.news",
    }
    for (topic, kind), name in kinds.items():
        body = webhook_jobs.payload({**base, "topic": topic, "kind": kind, "title": "t"})
        assert body["type"] == name
        assert ("before" in body["data"]) == (kind == "change")
    json.dumps(body, ensure_ascii=False)

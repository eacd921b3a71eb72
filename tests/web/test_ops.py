"""/healthz and /metrics: what an operator's probe and Prometheus read."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis

from sorawatch import metrics
from sorawatch.events import Event, EventLog, queue
from sorawatch.settings import Settings
from sorawatch.testing.ports import free_port
from sorawatch.web.app import create_app


def test_healthz_ok(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"redis": "ok"}}


def test_healthz_503_when_redis_is_down(settings: Settings) -> None:
    # A Redis nobody listens on, without the production client's patient retries.
    dead = Redis(port=free_port(), socket_connect_timeout=0.5, socket_timeout=0.5)
    response = TestClient(create_app(settings, dead)).get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "failing"
    assert body["checks"]["redis"].startswith("failing: "), body


def _families(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def test_metrics_in_prometheus_format(client: TestClient, redis: Redis, log: EventLog) -> None:
    keys = log.keys
    metrics.incr(redis, keys, "polls", 3, feed="openai")
    metrics.incr(redis, keys, "fetch_errors", 2, kind="timeout")
    metrics.incr(redis, keys, "deliveries", 5, channel="email", outcome="sent")
    metrics.incr(redis, keys, "alerts_raised", 1, topic="status", kind="change")
    for value in (0.2, 3.0, 400.0):
        metrics.observe(redis, keys, "delivery_latency_seconds", value, channel="email")
    log.append(Event.new("subscriber.confirmed", {"email": "m@example.com"}, "m"))
    queue("email", redis).enqueue("sorawatch.workers.email.send_confirmation", "m@example.com")

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = _families(response.text)
    assert found["sorawatch_polls_total"] == {(("feed", "openai"),): 3.0}
    assert found["sorawatch_fetch_errors_total"] == {(("kind", "timeout"),): 2.0}
    assert found["sorawatch_deliveries_total"][(("channel", "email"), ("outcome", "sent"))] == 5.0
    assert found["sorawatch_events_appended_total"] == {(("type", "subscriber.confirmed"),): 1.0}
    buckets = found["sorawatch_delivery_latency_seconds_bucket"]
    assert buckets[(("channel", "email"), ("le", "0.25"))] == 1.0
    assert buckets[(("channel", "email"), ("le", "5.0"))] == 2.0
    assert buckets[(("channel", "email"), ("le", "+Inf"))] == 3.0
    assert found["sorawatch_delivery_latency_seconds_count"] == {(("channel", "email"),): 3.0}
    assert found["sorawatch_delivery_latency_seconds_sum"] == {(("channel", "email"),): 403.2}
    depth = found["sorawatch_queue_jobs"]
    assert depth[(("queue", "email"), ("state", "queued"))] == 1.0
    assert depth[(("queue", "changes"), ("state", "failed"))] == 0.0
    assert depth[(("queue", "webhook"), ("state", "scheduled"))] == 0.0
    assert found["sorawatch_event_log_length"] == {(): 1.0}


def test_metrics_with_nothing_recorded(client: TestClient) -> None:
    found = _families(client.get("/metrics").text)
    assert found["sorawatch_event_log_length"] == {(): 0.0}

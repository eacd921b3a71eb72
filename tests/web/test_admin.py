"""The admin API: bearer auth, webhooks (the secret shown once, never logged),
subscribers, feeds with health, dead letters and their retry, replay, JSON errors."""

from __future__ import annotations

import dataclasses
import json

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from redis import Redis

from sorawatch.commands import subscriptions
from sorawatch.events import Event, EventLog, queue
from sorawatch.projections import apply, ledger, subscribers, webhooks
from sorawatch.settings import FeedSettings, Settings, WebhookSettings
from sorawatch.web.app import create_app
from tests import reliability as figures
from tests.reliability import Figures
from tests.web.seed import seed

# -- auth -------------------------------------------------------------------------


def test_admin_api_is_off_without_a_token(settings: Settings, redis: Redis) -> None:
    assert settings.web.admin_token is None
    client = TestClient(create_app(settings, redis))
    response = client.get("/api/webhooks", headers={"Authorization": "Bearer anything"})
    assert response.status_code == 404
    assert "admin API is off" in response.json()["error"]


@pytest.mark.parametrize(
    "header",
    [None, "Bearer wrong", "Basic YWRtaW46YWRtaW4=", "Bearer", "admin-token-for-tests"],
)
@pytest.mark.hostile
def test_admin_api_needs_the_bearer_token(
    client: TestClient, header: str | None, reliability: Figures
) -> None:
    headers = {"Authorization": header} if header is not None else {}
    response = client.get("/api/subscribers", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {"error": "a valid admin bearer token is required"}
    reliability.hostile_cases(figures.ADMIN_TOKEN, 1)


# -- webhooks ---------------------------------------------------------------------


def test_webhook_lifecycle(client: TestClient, admin: dict[str, str], log: EventLog) -> None:
    created = client.post(
        "/api/webhooks",
        headers=admin,
        json={"url": "http://127.0.0.1:9/hook", "lang": "ar", "topics": ["pricing"]},
    )
    assert created.status_code == 201
    body = created.json()
    assert body["id"].startswith("wh_")
    assert body["secret"].startswith("whsec_")
    assert (body["lang"], body["topics"], body["kinds"], body["active"]) == (
        "ar", ["pricing"], ["change", "news"], True
    )  # fmt: skip
    hook_id, secret = body["id"], body["secret"]
    # The secret is shown once: never listed, never in the event log.
    listed = client.get("/api/webhooks", headers=admin).json()
    assert [h["id"] for h in listed] == [hook_id]
    assert "secret" not in listed[0]
    assert secret not in json.dumps([e.to_dict() for _, e in log.read()])
    assert webhooks.secret(log.redis, log.keys, hook_id) == secret

    assert client.get(f"/api/webhooks/{hook_id}", headers=admin).json()["url"] == (
        "http://127.0.0.1:9/hook"
    )
    disabled = client.post(
        f"/api/webhooks/{hook_id}/disable", headers=admin, json={"reason": "maintenance"}
    )
    assert disabled.status_code == 200
    assert disabled.json()["active"] is False
    assert disabled.json()["disabled_reason"] == "maintenance"
    enabled = client.post(f"/api/webhooks/{hook_id}/enable", headers=admin)
    assert enabled.json()["active"] is True
    # A disable without a body has a default reason.
    assert client.post(f"/api/webhooks/{hook_id}/disable", headers=admin).json()["active"] is False

    assert client.delete(f"/api/webhooks/{hook_id}", headers=admin).status_code == 204
    assert client.get("/api/webhooks", headers=admin).json() == []
    for method, path in (
        ("GET", f"/api/webhooks/{hook_id}"),
        ("DELETE", f"/api/webhooks/{hook_id}"),
        ("POST", f"/api/webhooks/{hook_id}/disable"),
        ("POST", f"/api/webhooks/{hook_id}/enable"),
    ):
        missing = client.request(method, path, headers=admin)
        assert missing.status_code == 404
        assert hook_id in missing.json()["error"]


def test_webhook_with_a_given_secret(client: TestClient, admin: dict[str, str]) -> None:
    secret = "whsec_" + "A" * 32
    created = client.post(
        "/api/webhooks", headers=admin, json={"url": "http://127.0.0.1:9/h", "secret": secret}
    )
    assert created.status_code == 201
    assert created.json()["secret"] == secret


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:8080/hook", "inside the network"),
        ("http://10.0.0.5/hook", "inside the network"),
        ("http://169.254.169.254/latest/meta-data", "inside the network"),
        ("http://[::1]/hook", "inside the network"),
    ],
)
def test_webhook_inside_the_network_is_refused(
    web_settings: Settings, redis: Redis, admin: dict[str, str], url: str, message: str
) -> None:
    strict = dataclasses.replace(web_settings, webhooks=WebhookSettings(allow_private=False))
    client = TestClient(create_app(strict, redis))
    response = client.post("/api/webhooks", headers=admin, json={"url": url})
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert client.get("/api/webhooks", headers=admin).json() == []


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"url": "http://127.0.0.1/h", "lang": "fr"},
        {"url": "http://127.0.0.1/h", "topics": ["weather"]},
        {"url": "http://127.0.0.1/h", "topics": []},
        {"url": "http://127.0.0.1/h", "secret": "not-a-secret"},
        {"url": "http://127.0.0.1/h", "surprise": 1},
        {"url": "ftp://example.com/hook"},
        {"url": "javascript:alert(1)//"},
        [1, 2],
    ],
)
@pytest.mark.hostile
def test_bad_webhook_requests_are_422(
    client: TestClient, admin: dict[str, str], body: object, reliability: Figures
) -> None:
    response = client.post("/api/webhooks", headers=admin, json=body)
    assert response.status_code == 422
    assert isinstance(response.json()["error"], str)
    assert response.json()["error"]
    reliability.hostile_cases(figures.BODIES, 1)


@pytest.mark.hostile
def test_malformed_json_is_422(
    client: TestClient, admin: dict[str, str], reliability: Figures
) -> None:
    response = client.post(
        "/api/webhooks",
        headers={**admin, "content-type": "application/json"},
        content=b'{"url": ',
    )
    assert response.status_code == 422
    assert "error" in response.json()
    reliability.hostile_cases(figures.BODIES, 1)


# -- subscribers ------------------------------------------------------------------


def test_subscribers_paging_and_delete(
    client: TestClient, admin: dict[str, str], log: EventLog
) -> None:
    for n in range(5):
        subscriptions.request(log, f"s{n}@example.com", "en", None, None, confirmed=n % 2 == 0)
    # Unconfirmed requests stay outside the log (and the list) until confirmed; each
    # can still be looked up while it lasts.
    page = client.get("/api/subscribers?offset=1&limit=2", headers=admin).json()
    assert page["total"] == 3
    assert [s["email"] for s in page["items"]] == ["s2@example.com", "s4@example.com"]
    assert client.get("/api/subscribers/s1@example.com", headers=admin).json()["status"] == (
        "pending"
    )
    confirmed = client.get("/api/subscribers?status=confirmed", headers=admin).json()
    assert [s["email"] for s in confirmed["items"]] == [
        "s0@example.com", "s2@example.com", "s4@example.com"
    ]  # fmt: skip
    assert client.get("/api/subscribers/S2@example.com", headers=admin).json()["status"] == (
        "confirmed"
    )
    deleted = client.delete("/api/subscribers/S2@Example.com", headers=admin)
    assert deleted.json() == {"email": "s2@example.com", "unsubscribed": True}
    again = client.delete("/api/subscribers/s2@example.com", headers=admin)
    assert again.json() == {"email": "s2@example.com", "unsubscribed": False}
    assert client.delete("/api/subscribers/nobody@example.com", headers=admin).status_code == 404
    assert client.get("/api/subscribers/nobody@example.com", headers=admin).status_code == 404
    for bad in ("limit=0", "limit=5000", "offset=-1", "status=gone"):
        assert client.get(f"/api/subscribers?{bad}", headers=admin).status_code == 422


def test_an_operator_sets_a_subscribers_cadence(
    client: TestClient, admin: dict[str, str], log: EventLog
) -> None:
    subscriptions.request(log, "d@example.com", "ar", None, None, confirmed=True)
    url = "/api/subscribers/d@example.com"
    changed = client.patch(url, headers=admin, json={"cadence": "daily", "tz": "Asia/Riyadh"})
    assert changed.status_code == 200
    body = changed.json()
    assert (body["cadence"], body["tz"], body["hour"], body["max_per_day"]) == (
        "daily", "Asia/Riyadh", 8, 10
    )  # fmt: skip
    bad = client.patch(url, headers=admin, json={"tz": "Mars/Olympus"})
    assert bad.status_code == 400
    assert "Mars/Olympus" in bad.text
    assert client.patch(url, headers=admin, json={"hour": 24}).status_code == 422
    assert client.patch(url, headers=admin, json={"colour": "red"}).status_code == 422
    nobody = client.patch("/api/subscribers/no@example.com", headers=admin, json={"hour": 9})
    assert nobody.status_code == 404


# -- feeds ------------------------------------------------------------------------


def test_feeds_with_health(web_settings: Settings, redis: Redis, admin: dict[str, str]) -> None:
    feeds = (
        FeedSettings(url="https://openai.com/news/rss.xml", name="OpenAI News", lang="en"),
        FeedSettings(
            url="https://aitnews.com/feed/", name="البوابة العربية", lang="ar", interval=600
        ),
    )
    settings = dataclasses.replace(web_settings, feeds=feeds)
    app = create_app(settings, redis)
    redis.hset(
        app.state.keys.feed_health(feeds[0].url),
        mapping={"last_ok": "2025-10-01T00:00:00Z", "failures": "0", "last_status": "200",
                 "last_poll_seconds": "0.25", "last_error": ""},
    )  # fmt: skip
    listed = TestClient(app).get("/api/feeds", headers=admin).json()
    assert [f["name"] for f in listed] == ["OpenAI News", "البوابة العربية"]
    assert listed[0]["health"] == {
        "last_ok": "2025-10-01T00:00:00Z", "failures": 0, "last_status": 200,
        "last_poll_seconds": 0.25, "last_error": None,
    }  # fmt: skip
    assert listed[1]["health"] == {}
    assert listed[1]["interval"] == 600


# -- dead letters -----------------------------------------------------------------


def _abandon(log: EventLog, alert_id: str, channel: str, recipients: list[str]) -> None:
    results = [
        {"recipient": r, "outcome": "abandoned", "error": "550 no such user", "attempt": 2,
         "permanent": True}
        for r in recipients
    ]  # fmt: skip
    event = Event.new(
        "delivery.abandoned",
        {"alert_id": alert_id, "channel": channel, "results": results, "attempt": 2},
        alert_id, channel, recipients,
    )  # fmt: skip
    log.append(event)
    apply(log.redis, log.keys, event)


def test_dead_letters_list_and_retry(
    client: TestClient, admin: dict[str, str], log: EventLog, redis: Redis
) -> None:
    _abandon(log, "al_1", "email", ["a@example.com", "b@example.com"])
    _abandon(log, "al_2", "webhook", ["wh_1"])
    letters = client.get("/api/dead-letters", headers=admin).json()
    assert sorted((d["alert_id"], d["channel"], d["recipient"]) for d in letters) == [
        ("al_1", "email", "a@example.com"),
        ("al_1", "email", "b@example.com"),
        ("al_2", "webhook", "wh_1"),
    ]
    assert letters[0]["error"] == "550 no such user"
    only = client.get("/api/dead-letters?channel=webhook", headers=admin).json()
    assert [d["recipient"] for d in only] == ["wh_1"]

    retried = client.post("/api/dead-letters/retry", headers=admin, json={"channel": "email"})
    assert retried.json() == {"retried": 2}
    remaining = client.get("/api/dead-letters", headers=admin).json()
    assert [d["recipient"] for d in remaining] == ["wh_1"]
    jobs = queue("email", redis).jobs
    assert [(j.func_name, j.args[:3]) for j in jobs] == [
        ("sorawatch.workers.email.deliver_email", ["al_1", ["a@example.com", "b@example.com"], 0])
    ]
    last = [e for _, e in log.read()][-1]
    assert last.type == "delivery.retried"
    assert jobs[0].args[3] == last.id  # the retried batch is tagged by its event
    assert ledger.status(redis, log.keys, "al_1", "email", "a@example.com") == "retrying"

    everything = client.post("/api/dead-letters/retry", headers=admin)
    assert everything.json() == {"retried": 1}
    assert [j.func_name for j in queue("webhook", redis).jobs] == [
        "sorawatch.workers.webhook.deliver_webhooks"
    ]
    assert client.get("/api/dead-letters", headers=admin).json() == []
    assert client.post("/api/dead-letters/retry", headers=admin).json() == {"retried": 0}


# -- replay -----------------------------------------------------------------------


def test_replay_rebuilds_what_the_page_shows(
    client: TestClient, admin: dict[str, str], log: EventLog, redis: Redis
) -> None:
    seed(log)
    subscriptions.request(log, "r@example.com", "ar", None, None, confirmed=True)
    before = client.get("/?lang=en").text
    # Lose every projection key, as a broken Redis might.
    for key in redis.scan_iter(match=log.keys.projection("*")):
        redis.delete(key)
    assert "Sora partnership: Disney" not in client.get("/?lang=en").text
    response = client.post("/api/replay", headers=admin)
    assert response.status_code == 200
    body = response.json()
    assert body["events"] == log.count()
    assert body["by_type"]["alert.raised"] == 3
    assert client.get("/?lang=en").text == before
    sub = subscribers.get(redis, log.keys, "r@example.com")
    assert sub is not None
    assert sub.status == "confirmed"


def test_replay_waits_for_change_processing(
    app: FastAPI, admin: dict[str, str], redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sorawatch.web import admin as admin_routes

    monkeypatch.setattr(admin_routes, "REPLAY_WAIT", 0.1)
    lock = redis.lock(app.state.keys.changes_lock, timeout=30)
    assert lock.acquire()
    try:
        response = TestClient(app).post("/api/replay", headers=admin)
    finally:
        lock.release()
    assert response.status_code == 409
    assert "lock" in response.json()["error"]


# -- JSON errors ------------------------------------------------------------------


def test_json_errors(client: TestClient, admin: dict[str, str], app: FastAPI) -> None:
    @app.get("/api/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    cases = [
        ("GET", "/api/nothing-here", None, 404),
        ("PUT", "/api/webhooks", None, 405),
        ("POST", "/api/webhooks", b"x" * (65 * 1024), 413),
        ("POST", "/api/webhooks", b"{}", 422),
        ("GET", "/api/boom", None, 500),
    ]
    for method, path, content, status in cases:
        response = client.request(
            method, path, headers={**admin, "content-type": "application/json"}, content=content
        )
        assert response.status_code == status, (path, response.text)
        assert response.headers["content-type"] == "application/json"
        assert set(response.json()) == {"error"}
        assert response.json()["error"]
        assert "secret internals" not in response.text

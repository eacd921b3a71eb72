"""Hostile requests to the web app that ``tests/web/`` does not already make.

``tests/web/`` covers (and, marked ``hostile``, counts): garbage, other-secret,
cross-purpose and expired confirm tokens; garbage and cross-purpose unsubscribe
tokens; a cross-purpose preferences token; five bad Authorization headers on one
admin route; bad webhook bodies and broken JSON; oversized forms, chunked
bodies and API bodies; schemathesis over the spec. Here:

- every admin route and method, with no token, a wrong one and near misses of the
  right one (a prefix, other case, Basic, in the query string); and with the admin
  API off: 401 (404 when off), nothing written;
- every token page (confirm, unsubscribe GET and POST, preferences GET and POST)
  with tokens tampered with (another address's payload under a valid signature,
  a cut signature), validly signed payloads of the wrong shape, another secret,
  the other purposes, 10,000 characters, NUL: 400, nothing written;
- malformed and oversized bodies to the admin API and the forms (nested JSON,
  invalid UTF-8, huge numbers, the wrong content type, control characters in a
  webhook URL, CR/LF in an address, broken multipart): a 4xx, never a 500.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from itsdangerous import URLSafeTimedSerializer
from redis import Redis
from standardwebhooks import Webhook as Verifier

from sorawatch.commands import endpoints, subscriptions
from sorawatch.events import Event, EventLog, queue, utcnow
from sorawatch.keys import Keys
from sorawatch.projections import apply, ledger, subscribers, webhooks
from sorawatch.projections._common import KINDS, TOPICS
from sorawatch.settings import Settings
from sorawatch.testing.alerts import raise_alert
from sorawatch.testing.http import HttpReceiver
from sorawatch.tokens import Tokens
from sorawatch.web.app import create_app
from sorawatch.workers.fanout import fan_out
from tests.reliability import ADMIN_TOKEN as ADMIN_CASES
from tests.reliability import BODIES as BODY_CASES
from tests.reliability import TOKENS as TOKENS_CASES
from tests.reliability import Figures
from tests.workers.delivery_helpers import events_of, failed_jobs, run_jobs, setup_runtime

pytestmark = pytest.mark.hostile

ADMIN_TOKEN = "admin-token-for-hostile-tests"
SECRET = "test-secret"  # web.secret of the shared settings fixture
ADDRESS = "reader@example.test"


@pytest.fixture
def web_settings(settings: Settings) -> Settings:
    # A high rate limit: these tests send many bad forms from one client on purpose.
    web = dataclasses.replace(settings.web, admin_token=ADMIN_TOKEN, subscribe_rate=1000)
    return dataclasses.replace(settings, web=web)


@pytest.fixture
def app(web_settings: Settings, redis: Redis) -> FastAPI:
    return create_app(web_settings, redis)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    # A crash must come back as the 500 answer, so the test can see it.
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def log(redis: Redis, web_settings: Settings) -> EventLog:
    return EventLog(redis, Keys(web_settings.redis.prefix))


def admin_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every admin route in the spec, path parameters filled in."""
    sample = {"webhook_id": "wh_0123456789abcdef01234567", "email": ADDRESS}
    out = []
    for path, operations in app.openapi()["paths"].items():
        if path.startswith("/api/"):
            filled = re.sub(r"\{(\w+)\}", lambda m: sample[m.group(1)], path)
            out += [(method.upper(), filled) for method in sorted(operations)]
    return out


# -- the admin token -------------------------------------------------------------------

WRONG_AUTH: list[dict[str, str | bytes]] = [
    {},
    {"Authorization": "Bearer "},
    {"Authorization": "Bearer wrong"},
    {"Authorization": f"Bearer {ADMIN_TOKEN[:-1]}"},  # a prefix of the right one
    {"Authorization": f"Bearer {ADMIN_TOKEN}x"},  # the right one and more
    {"Authorization": f"Bearer {ADMIN_TOKEN.upper()}"},
    {"Authorization": f"Basic {ADMIN_TOKEN}"},
    {"Authorization": ADMIN_TOKEN},  # no scheme
    {"Authorization": "Bearer t\u00f6ken".encode()},  # not ASCII
    {"X-Admin-Token": ADMIN_TOKEN},  # not where the token goes
]


def test_every_admin_route_refuses_a_missing_or_wrong_token(
    app: FastAPI, client: TestClient, log: EventLog, reliability: Figures
) -> None:
    routes = admin_routes(app)
    assert len(routes) >= 12, routes
    body = {"url": "http://127.0.0.1:9/hook"}
    cases = 0
    for n, (method, path) in enumerate(routes):
        # One client per route: failed logins are rate-limited per client (tested below).
        peer = TestClient(app, client=(f"192.0.2.{n + 1}", 4000))
        for headers in [*WRONG_AUTH, {}]:
            url = path if headers else f"{path}?token={ADMIN_TOKEN}&access_token={ADMIN_TOKEN}"
            answer = peer.request(method, url, headers=headers, json=body)
            assert answer.status_code == 401, (method, url, headers, answer.text)
            assert answer.headers["www-authenticate"] == "Bearer"
            assert answer.json() == {"error": "a valid admin bearer token is required"}
            cases += 1
    assert log.count() == 0
    assert webhooks.count(log.redis, log.keys) == 0
    reliability.hostile_cases(ADMIN_CASES, cases)


def test_failed_admin_logins_are_rate_limited_per_client(
    app: FastAPI, reliability: Figures
) -> None:
    from sorawatch.web.security import AUTH_FAILURES

    guesser = TestClient(app, client=("203.0.113.9", 4000))
    codes = [
        guesser.get("/api/webhooks", headers={"Authorization": f"Bearer guess{n}"}).status_code
        for n in range(AUTH_FAILURES + 5)
    ]
    assert codes == [401] * AUTH_FAILURES + [429] * 5
    # Locked out for the window, even with the right token; other clients are not.
    right = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert guesser.get("/api/webhooks", headers=right).status_code == 429
    assert 0 < int(guesser.get("/api/webhooks", headers=right).headers["retry-after"]) <= 3600
    other = TestClient(app, client=("203.0.113.10", 4000))
    assert other.get("/api/webhooks", headers=right).status_code == 200
    reliability.hostile_cases(ADMIN_CASES, len(codes))


def test_metrics_token_when_set(settings: Settings, redis: Redis) -> None:
    token = "m" * 40
    web = dataclasses.replace(settings.web, metrics_token=token)
    app = create_app(dataclasses.replace(settings, web=web), redis)
    with TestClient(app) as c:
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
        ok = c.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200
        assert "sorawatch_event_log_length" in ok.text
    with TestClient(create_app(settings, redis)) as c:  # unset: open, as before
        assert c.get("/metrics").status_code == 200


def test_with_the_admin_api_off_every_route_is_404(
    settings: Settings, redis: Redis, log: EventLog, reliability: Figures
) -> None:
    assert settings.web.admin_token is None
    app = create_app(settings, redis)
    client = TestClient(app, raise_server_exceptions=False)
    cases = 0
    for method, path in admin_routes(app):
        for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer None"}):
            answer = client.request(method, path, headers=headers, json={"url": "http://a/"})
            assert answer.status_code == 404, (method, path, headers, answer.text)
            assert "admin API is off" in answer.json()["error"]
            cases += 1
    assert log.count() == 0
    reliability.hostile_cases(ADMIN_CASES, cases)


# -- tokens ----------------------------------------------------------------------------


def signed(purpose: str, payload: object, secret: str = SECRET) -> str:
    return str(URLSafeTimedSerializer(secret, salt=f"sorawatch.{purpose}").dumps(payload))


def bad_tokens(purpose: str, tokens: Tokens) -> dict[str, str]:
    """Tokens that must not work for ``purpose`` (all for ADDRESS unless said)."""
    good = tokens.sign(purpose, ADDRESS)
    other = tokens.sign(purpose, "someone-else@example.test")
    payload, rest = good.split(".", 1)
    out = {
        # Another address's payload under this token's timestamp and signature.
        "payload swapped": other.split(".", 1)[0] + "." + rest,
        "payload edited": payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + rest,
        "signature cut": good.rsplit(".", 1)[0] + "." + good.rsplit(".", 1)[1][:-4],
        "signature dropped": good.rsplit(".", 1)[0],
        "signed list": signed(purpose, [ADDRESS]),
        "signed number": signed(purpose, {"e": 5}),
        "signed nothing": signed(purpose, None),
        "other secret": signed(purpose, {"e": ADDRESS}, secret="not-the-secret"),
        "10,000 characters": "a" * 10_000,
        "NUL": "%00",
    }
    for other_purpose in ("confirm", "unsubscribe", "preferences"):
        if other_purpose != purpose:
            out[f"{other_purpose} token"] = tokens.sign(other_purpose, ADDRESS)
    return out


PAGES = [
    ("GET", "confirm"),
    ("GET", "unsubscribe"),
    ("POST", "unsubscribe"),
    ("GET", "preferences"),
    ("POST", "preferences"),
]
FORMS = {
    "unsubscribe": {"List-Unsubscribe": "One-Click"},
    "preferences": {"lang": "ar", "topics": ["status"], "kinds": ["news"]},
}


def test_tampered_and_wrong_tokens_open_no_page(
    client: TestClient, log: EventLog, reliability: Figures
) -> None:
    subscriptions.request(log, ADDRESS, "en", None, None)
    subscriptions.request(log, "someone-else@example.test", "en", None, None, confirmed=True)
    before = log.count()
    tokens = Tokens(SECRET)
    cases = 0
    for method, purpose in PAGES:
        for name, token in bad_tokens(purpose, tokens).items():
            url = f"/{purpose}/{token}?lang=en"
            data = FORMS.get(purpose) if method == "POST" else None
            answer = client.request(method, url, data=data, headers={"accept": "text/html"})
            assert answer.status_code == 400, (method, purpose, name, answer.status_code)
            assert "This link does not work" in answer.text, (method, purpose, name)
            cases += 1
    assert log.count() == before
    mine = subscribers.get(log.redis, log.keys, ADDRESS)
    theirs = subscribers.get(log.redis, log.keys, "someone-else@example.test")
    assert mine is not None
    assert mine.status == "pending"
    assert theirs is not None
    assert (theirs.status, theirs.lang) == ("confirmed", "en")
    reliability.hostile_cases(TOKENS_CASES, cases)


# -- bodies ----------------------------------------------------------------------------

JSON_CT = {"content-type": "application/json"}
BAD_API_BODIES: list[tuple[str, str, dict[str, str], bytes, tuple[int, ...]]] = [
    # (name, path, headers, body, acceptable statuses)
    ("nested arrays", "/api/webhooks", JSON_CT, b"[" * 30000 + b"]" * 30000, (400, 422)),
    ("nested objects", "/api/webhooks", JSON_CT, b'{"url":' * 6000 + b"1" + b"}" * 6000,
     (400, 422)),
    ("invalid UTF-8", "/api/webhooks", JSON_CT, b'{"url": "http://127.0.0.1/\xff\xfe"}',
     (400, 422)),
    ("NaN", "/api/webhooks", JSON_CT, b'{"url": NaN}', (400, 422)),
    ("1e999999", "/api/webhooks", JSON_CT, b'{"url": "http://127.0.0.1/", "lang": 1e999999}',
     (400, 422)),
    ("a 5,000-digit number", "/api/webhooks", JSON_CT,
     b'{"url": "http://127.0.0.1/", "lang": ' + b"9" * 5000 + b"}", (400, 422)),
    ("trailing garbage", "/api/webhooks", JSON_CT, b'{"url": "http://127.0.0.1/"} {}',
     (400, 422)),
    ("duplicate keys", "/api/webhooks", JSON_CT,
     b'{"url": "http://127.0.0.1/", "url": "file:///etc/passwd"}', (400, 422)),
    ("JSON as text/plain", "/api/webhooks", {"content-type": "text/plain"},
     b'{"url": "http://127.0.0.1/"}', (400, 415, 422)),
    ("a form", "/api/webhooks", {"content-type": "application/x-www-form-urlencoded"},
     b"url=http%3A%2F%2F127.0.0.1%2F", (400, 415, 422)),
    ("NUL in the URL", "/api/webhooks", JSON_CT, b'{"url": "http://127.0.0.1:9/\\u0000x"}',
     (400, 422)),
    ("a control character in the URL", "/api/webhooks", JSON_CT,
     b'{"url": "http://127.0.0.1:9/a\\u0007b"}', (400, 422)),
    ("DEL in the URL", "/api/webhooks", JSON_CT, b'{"url": "http://127.0.0.1:9/a\\u007fb"}',
     (400, 422)),
    ("a retry with broken JSON", "/api/dead-letters/retry", JSON_CT, b'{"alert_id": [',
     (400, 422)),
    ("a retry with a list", "/api/dead-letters/retry", JSON_CT, b"[1, 2, 3]", (400, 422)),
    ("a disable reason of 100,000 characters", "/api/webhooks/wh_0/disable", JSON_CT,
     b'{"reason": "' + b"r" * 60_000 + b'"}', (404, 413, 422)),
]  # fmt: skip


def _chunks(size: int) -> Iterator[bytes]:
    for _ in range(size // 1024):
        yield b" " * 1024


def test_malformed_and_oversized_admin_bodies(
    client: TestClient, log: EventLog, reliability: Figures
) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    for name, path, headers, body, statuses in BAD_API_BODIES:
        answer = client.post(path, headers={**admin, **headers}, content=body)
        assert answer.status_code in statuses, (name, answer.status_code, answer.text[:300])
        assert set(answer.json()) == {"error"}, name
    # A body streamed without a length, past the cap.
    answer = client.post("/api/webhooks", headers={**admin, **JSON_CT}, content=_chunks(80 * 1024))
    assert answer.status_code == 413, answer.text
    assert log.count() == 0
    assert webhooks.count(log.redis, log.keys) == 0
    reliability.hostile_cases(BODY_CASES, len(BAD_API_BODIES) + 1)


FORM_CT = {"content-type": "application/x-www-form-urlencoded", "accept": "text/html"}
SUBSCRIBE = "email={email}&lang=en&topics=status&kinds=change"
BAD_FORMS: list[tuple[str, str, dict[str, str], bytes, tuple[int, ...]]] = [
    ("CR/LF and Bcc in the address", "/subscribe", FORM_CT,
     SUBSCRIBE.format(email="a%40example.test%0D%0ABcc%3A%20v%40example.test").encode(), (400,)),
    ("LF in the address", "/subscribe", FORM_CT,
     SUBSCRIBE.format(email="a%40example.test%0Ab%40example.test").encode(), (400,)),
    ("NUL in the address", "/subscribe", FORM_CT,
     SUBSCRIBE.format(email="a%00%40example.test").encode(), (400,)),
    ("two addresses", "/subscribe", FORM_CT,
     SUBSCRIBE.format(email="a%40example.test%2C%20b%40example.test").encode(), (400,)),
    ("an address of 10,000 characters", "/subscribe", FORM_CT,
     SUBSCRIBE.format(email="a" * 10_000 + "%40example.test").encode(), (400,)),
    ("broken percent-encoding", "/subscribe", FORM_CT,
     b"email=%ZZ%&lang=%E0%A4&topics=\xff&kinds=%", (400,)),
    ("binary garbage", "/subscribe", FORM_CT, bytes(range(256)) * 8, (400,)),
    ("multipart without a boundary", "/subscribe",
     {"content-type": "multipart/form-data", "accept": "text/html"}, b"garbage", (400,)),
    ("multipart cut short", "/subscribe",
     {"content-type": "multipart/form-data; boundary=x", "accept": "text/html"},
     b'--x\r\nContent-Disposition: form-data; name="email"\r\n\r\na@example.test', (400,)),
    ("JSON to a form", "/subscribe", {"content-type": "application/json", "accept": "text/html"},
     b'{"email": "a@example.test", "lang": "en"}', (400,)),
    ("no body at all", "/subscribe", FORM_CT, b"", (400,)),
]  # fmt: skip


def test_malformed_and_oversized_forms(
    client: TestClient, log: EventLog, redis: Redis, reliability: Figures
) -> None:
    for name, path, headers, body, statuses in BAD_FORMS:
        answer = client.post(path, headers=headers, content=body)
        assert answer.status_code in statuses, (name, answer.status_code, answer.text[:300])
        assert answer.status_code < 500, name
    # A file where the address goes.
    answer = client.post(
        "/subscribe", files={"email": ("e.txt", b"a@example.test", "text/plain")}, data={}
    )
    assert answer.status_code == 400, answer.text[:300]
    # A streamed preferences form past the cap, and a huge language choice in the URL.
    token = Tokens(SECRET).sign("preferences", ADDRESS)
    answer = client.post(f"/preferences/{token}", headers=FORM_CT, content=_chunks(80 * 1024))
    assert answer.status_code == 413
    assert client.get("/?lang=" + "a" * 10_000).status_code == 200
    assert client.get("/subscribe?lang=%00").status_code == 200
    assert log.count() == 0
    assert not redis.keys("*subscriber*")
    reliability.hostile_cases(BODY_CASES, len(BAD_FORMS) + 4)


# -- a webhook URL httpx will not send to --------------------------------------------


def test_a_stored_webhook_url_with_a_control_character_fails_only_itself(
    redis: Redis, settings: Settings, log: EventLog, reliability: Figures
) -> None:
    """Registration now refuses such URLs (above); one stored before that, or written
    by anything else, must not fail the batch it is in: the others still get the alert."""
    setup_runtime(settings, redis)
    with HttpReceiver() as rx:
        good, secret = endpoints.register(log, rx.url("/good"), allow_private=True)
        bad_id = "wh_" + "0" * 24
        data = {"webhook_id": bad_id, "url": rx.url("/bad\x00x"), "lang": "both",
                "topics": list(TOPICS), "kinds": list(KINDS), "created_at": utcnow()}  # fmt: skip
        redis.hset(log.keys.webhook_secrets, bad_id, endpoints.new_secret())
        event = Event.new("webhook.registered", data, bad_id)
        log.append(event)
        apply(redis, log.keys, event)
        _, alert = raise_alert(log)
        fan_out(alert.id)
        run_jobs(redis)
        assert failed_jobs(redis) == []
        [received] = rx.to("/good")
        Verifier(secret).verify(received.body.decode(), received.headers)
    assert ledger.status(redis, log.keys, "al_test1", "webhook", good.id) == "sent"
    dead = [r for e in events_of(log, "delivery.abandoned") for r in e.data["results"]]
    assert [(r["recipient"], "invalid URL" in r["error"]) for r in dead] == [(bad_id, True)]
    assert not queue("webhook", redis).scheduled_job_registry.get_job_ids()
    reliability.hostile_cases("webhook URL with a control character at send time", 1)

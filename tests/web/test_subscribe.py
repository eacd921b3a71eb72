"""Subscribe, confirm, unsubscribe (RFC 8058) and preferences over HTTP, with a real
Redis, a real RQ worker and a real SMTP server for the confirmation mail."""

from __future__ import annotations

import dataclasses
import html
import re
import time
from email.message import EmailMessage

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from redis import Redis
from rq.serializers import JSONSerializer

from sorawatch.commands import subscriptions
from sorawatch.events import EventLog, queue
from sorawatch.projections import subscribers
from sorawatch.settings import Settings, SmtpSettings
from sorawatch.testing.smtp import SmtpServer
from sorawatch.tokens import Tokens
from sorawatch.web.app import create_app
from sorawatch.workers.worker import BurstWorker
from tests import reliability as figures
from tests.reliability import Figures

FORM = {"email": "Reader@Example.com", "lang": "ar", "topics": ["status", "pricing"],
        "kinds": ["change"]}  # fmt: skip


def event_types(log: EventLog) -> list[str]:
    return [e.type for _, e in log.read()]


def email_jobs(redis: Redis) -> list[tuple[str, tuple[object, ...]]]:
    q = queue("email", redis)
    return [(j.func_name, tuple(j.args)) for j in q.jobs]


# -- subscribe --------------------------------------------------------------------


def test_subscribe_keeps_the_request_aside_and_queues_the_mail(
    client: TestClient, log: EventLog, redis: Redis
) -> None:
    response = client.post("/subscribe?lang=en", data=FORM)
    assert response.status_code == 200
    assert "Check your inbox" in response.text
    sub = subscribers.get(redis, log.keys, "reader@example.com")
    assert sub is not None
    assert (sub.status, sub.lang, sub.topics, sub.kinds) == (
        "pending", "ar", ("status", "pricing"), ("change",)
    )  # fmt: skip
    # Nothing in the log until it is confirmed; the request expires on its own.
    assert event_types(log) == []
    assert 0 < redis.ttl(log.keys.pending("reader@example.com")) <= 48 * 3600
    assert email_jobs(redis) == [
        ("sorawatch.workers.email.send_confirmation", ("reader@example.com",))
    ]


def test_same_answer_for_known_and_unknown_addresses(client: TestClient, log: EventLog) -> None:
    subscriptions.request(log, "known@example.com", "en", None, None, confirmed=True)
    known = client.post("/subscribe?lang=en", data={**FORM, "email": "known@example.com"})
    fresh = client.post("/subscribe?lang=en", data={**FORM, "email": "fresh@example.com"})
    assert known.status_code == fresh.status_code == 200
    assert known.text.replace("known@", "X@") == fresh.text.replace("fresh@", "X@")
    # The confirmed subscriber was left as is: no new event, no mail for them.
    sub = subscribers.get(log.redis, log.keys, "known@example.com")
    assert sub is not None
    assert sub.status == "confirmed"
    assert sub.lang == "en"


@pytest.mark.parametrize(
    ("lang", "message"),
    [
        ("en", "That does not look like an email address"),
        ("ar", "يبدو أن عنوان البريد غير صحيح"),
    ],
)
@pytest.mark.parametrize("bad", ["", "not-an-address", "a@b", "x@@example.com", "a b@example.com"])
def test_bad_address_gets_the_form_back(
    client: TestClient, log: EventLog, lang: str, message: str, bad: str
) -> None:
    response = client.post(f"/subscribe?lang={lang}", data={**FORM, "email": bad})
    assert response.status_code == 400
    assert message in response.text
    assert 'name="email"' in response.text
    assert f'<html lang="{lang}"' in response.text
    assert log.count() == 0


def test_bad_choices_get_the_form_back(client: TestClient, log: EventLog) -> None:
    for data in (
        {**FORM, "topics": []},
        {**FORM, "kinds": []},
        {**FORM, "lang": "fr"},
        {**FORM, "topics": ["weather"]},
    ):
        response = client.post("/subscribe?lang=en", data=data)
        assert response.status_code == 400
        assert "Please choose a language" in response.text
        # What was typed is kept.
        assert 'value="Reader@Example.com"' in response.text
    assert log.count() == 0


def test_rate_limited_per_client(web_settings: Settings, redis: Redis) -> None:
    settings = dataclasses.replace(
        web_settings, web=dataclasses.replace(web_settings.web, subscribe_rate=2)
    )
    client = TestClient(create_app(settings, redis))
    for n in range(2):
        ok = client.post("/subscribe?lang=ar", data={**FORM, "email": f"r{n}@example.com"})
        assert ok.status_code == 200
    over = client.post("/subscribe?lang=ar", data={**FORM, "email": "r9@example.com"})
    assert over.status_code == 429
    assert "طلبات كثيرة في وقت قصير" in over.text
    assert 0 < int(over.headers["retry-after"]) <= 3600
    assert subscribers.get(redis, settings_keys(settings), "r9@example.com") is None
    # Another client is not held back by the first.
    other = TestClient(create_app(settings, redis), client=("192.0.2.7", 4000))
    assert other.post("/subscribe", data={**FORM, "email": "r9@example.com"}).status_code == 200


def settings_keys(settings: Settings):  # type: ignore[no-untyped-def]
    from sorawatch.keys import Keys

    return Keys(settings.redis.prefix)


# -- confirm ----------------------------------------------------------------------


def test_confirm_get_shows_a_button_and_post_confirms(
    client: TestClient, log: EventLog, tokens: Tokens
) -> None:
    subscriptions.request(log, "c@example.com", "ar", None, None)
    token = tokens.sign("confirm", "c@example.com")
    # A GET (a mail scanner following the link) shows the button and confirms nothing.
    for _ in range(2):
        shown = client.get(f"/confirm/{token}")
        assert shown.status_code == 200
        assert '<html lang="ar" dir="rtl">' in shown.text  # the subscriber's own language
        assert '<form method="post" action="?lang=ar">' in shown.text
        assert "أكّد الاشتراك" in shown.text
    sub = subscribers.get(log.redis, log.keys, "c@example.com")
    assert sub is not None
    assert sub.status == "pending"
    assert event_types(log) == []
    response = client.post(f"/confirm/{token}?lang=ar")
    assert response.status_code == 200
    assert "تم تأكيد اشتراكك" in response.text
    sub = subscribers.get(log.redis, log.keys, "c@example.com")
    assert sub is not None
    assert sub.status == "confirmed"
    assert event_types(log) == ["subscriber.requested", "subscriber.confirmed"]
    assert not log.redis.exists(log.keys.pending("c@example.com"))
    # Twice is harmless.
    assert client.post(f"/confirm/{token}").status_code == 200
    assert event_types(log).count("subscriber.confirmed") == 1


@pytest.mark.hostile
def test_confirm_rejects_forged_expired_and_other_purpose_tokens(
    client: TestClient,
    log: EventLog,
    tokens: Tokens,
    web_settings: Settings,
    reliability: Figures,
) -> None:
    subscriptions.request(log, "c@example.com", "en", None, None)
    old = _expired_confirm_token(web_settings.web.secret or "", "c@example.com")
    for token in (
        "garbage",
        tokens.sign("unsubscribe", "c@example.com"),
        tokens.sign("preferences", "c@example.com"),
        Tokens("another-secret").sign("confirm", "c@example.com"),
        old,
    ):
        response = client.get(f"/confirm/{token}?lang=en")
        assert response.status_code == 400, token
        assert "This link does not work" in response.text
    sub = subscribers.get(log.redis, log.keys, "c@example.com")
    assert sub is not None
    assert sub.status == "pending"
    reliability.hostile_cases(figures.TOKENS, 5)


def _expired_confirm_token(secret: str, email: str) -> str:
    class Past(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 49 * 3600

    serializer = URLSafeTimedSerializer(secret, salt="sorawatch.confirm", signer=Past)
    return str(serializer.dumps({"e": email}))


def test_confirm_for_an_unknown_address(client: TestClient, tokens: Tokens) -> None:
    response = client.get(f"/confirm/{tokens.sign('confirm', 'nobody@example.com')}?lang=en")
    assert response.status_code == 404
    assert "no longer exists" in response.text


def test_confirmation_mail_arrives_and_its_link_confirms(
    app: FastAPI, client: TestClient, web_settings: Settings, redis: Redis, log: EventLog
) -> None:
    from sorawatch.workers import runtime

    with SmtpServer() as smtp:
        smtp_settings = dataclasses.replace(
            web_settings, smtp=SmtpSettings(host="127.0.0.1", port=smtp.port, timeout=5)
        )
        runtime.configure(smtp_settings, redis)
        try:
            response = client.post("/subscribe?lang=en", data={**FORM, "lang": "en"})
            assert response.status_code == 200
            BurstWorker([queue("email", redis)], connection=redis, serializer=JSONSerializer).work(
                burst=True
            )
        finally:
            runtime.reset()
        mails = smtp.to("reader@example.com")
    assert len(mails) == 1
    link = _confirm_link(mails[0], web_settings.web.public_url)
    confirmed = client.post(link.removeprefix(web_settings.web.public_url))
    assert confirmed.status_code == 200
    assert "You're subscribed" in html.unescape(confirmed.text)
    sub = subscribers.get(redis, log.keys, "reader@example.com")
    assert sub is not None
    assert sub.status == "confirmed"


def _confirm_link(mail: EmailMessage, public_url: str) -> str:
    body = mail.get_body(("plain",))
    assert body is not None
    match = re.search(re.escape(public_url) + r"/confirm/[A-Za-z0-9_.\-]+", body.get_content())
    assert match, body.get_content()
    return match.group(0)


# -- unsubscribe ------------------------------------------------------------------


@pytest.fixture
def confirmed(log: EventLog) -> str:
    subscriptions.request(log, "u@example.com", "en", None, None, confirmed=True)
    return "u@example.com"


def test_unsubscribe_get_never_unsubscribes(
    client: TestClient, log: EventLog, tokens: Tokens, confirmed: str
) -> None:
    token = tokens.sign("unsubscribe", confirmed)
    page = client.get(f"/unsubscribe/{token}")
    assert page.status_code == 200
    assert '<input type="hidden" name="List-Unsubscribe" value="One-Click">' in page.text
    assert 'action="?lang=en"' in page.text
    assert "/preferences/" in page.text
    sub = subscribers.get(log.redis, log.keys, confirmed)
    assert sub is not None
    assert sub.status == "confirmed"


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_one_click_unsubscribe(
    app: FastAPI, log: EventLog, tokens: Tokens, confirmed: str, encoding: str
) -> None:
    # A fresh client per request: no cookie, no session, nothing but the token.
    client = TestClient(app, cookies=None, follow_redirects=False)
    url = f"/unsubscribe/{tokens.sign('unsubscribe', confirmed)}"
    if encoding == "urlencoded":
        response = client.post(url, data={"List-Unsubscribe": "One-Click"})
        assert response.request.headers["content-type"] == "application/x-www-form-urlencoded"
    else:
        response = client.post(url, files={"List-Unsubscribe": (None, "One-Click")})
        assert response.request.headers["content-type"].startswith("multipart/form-data")
    assert response.status_code == 200
    assert "set-cookie" not in response.headers
    assert "You're unsubscribed" in html.unescape(response.text)
    sub = subscribers.get(log.redis, log.keys, confirmed)
    assert sub is not None
    assert sub.status == "unsubscribed"
    # Again: still 200, no second event.
    assert client.post(url, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert [t for t in event_types(log) if t == "subscriber.unsubscribed"] == [
        "subscriber.unsubscribed"
    ]


@pytest.mark.hostile
def test_unsubscribe_needs_an_unsubscribe_token(
    client: TestClient, log: EventLog, tokens: Tokens, confirmed: str, reliability: Figures
) -> None:
    for token in ("nope", tokens.sign("confirm", confirmed), tokens.sign("preferences", confirmed)):
        assert (
            client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"}).status_code
            == 400
        )
        assert client.get(f"/unsubscribe/{token}").status_code == 400
    sub = subscribers.get(log.redis, log.keys, confirmed)
    assert sub is not None
    assert sub.status == "confirmed"
    reliability.hostile_cases(figures.TOKENS, 6)  # three tokens, GET and POST


def test_unsubscribe_without_token_goes_home(client: TestClient) -> None:
    response = client.get("/unsubscribe?lang=ar", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/?lang=ar"


# -- preferences ------------------------------------------------------------------


def test_preferences_show_and_save(
    client: TestClient, log: EventLog, tokens: Tokens, confirmed: str
) -> None:
    url = f"/preferences/{tokens.sign('preferences', confirmed)}"
    page = client.get(url)
    assert page.status_code == 200
    assert 'name="lang" value="en" checked' in page.text
    saved = client.post(
        url, data={"lang": "both", "topics": ["partnership"], "kinds": ["change", "news"]}
    )
    assert saved.status_code == 200
    assert "Your preferences are saved." in saved.text
    sub = subscribers.get(log.redis, log.keys, confirmed)
    assert sub is not None
    assert (sub.lang, sub.topics, sub.kinds, sub.status) == (
        "both", ("partnership",), ("change", "news"), "confirmed"
    )  # fmt: skip
    assert event_types(log)[-1] == "subscriber.updated"


def test_cadence_from_the_form_and_the_preferences_page(
    client: TestClient, log: EventLog, redis: Redis, tokens: Tokens, confirmed: str
) -> None:
    form = {**FORM, "cadence": "daily", "tz": "Asia/Riyadh", "hour": "7", "max_per_day": "3"}
    assert client.post("/subscribe?lang=en", data=form).status_code == 200
    sub = subscribers.get(redis, log.keys, "reader@example.com")
    assert sub is not None
    assert (sub.cadence, sub.tz, sub.hour, sub.max_per_day) == ("daily", "Asia/Riyadh", 7, 3)
    bad = client.post(
        "/subscribe?lang=en", data={**form, "email": "x@example.com", "tz": "Nowhere"}
    )
    assert bad.status_code == 400
    assert subscribers.get(redis, log.keys, "x@example.com") is None
    url = f"/preferences/{tokens.sign('preferences', confirmed)}"
    assert 'name="cadence" value="instant" checked' in client.get(url).text
    saved = client.post(
        url,
        data={"lang": "en", "topics": ["status"], "kinds": ["change"], "cadence": "weekly",
              "tz": "Europe/Berlin", "hour": "18", "max_per_day": "0"},
    )  # fmt: skip
    assert saved.status_code == 200
    assert 'name="cadence" value="weekly" checked' in saved.text
    assert '<option value="18" selected>' in saved.text
    mine = subscribers.get(redis, log.keys, confirmed)
    assert mine is not None
    assert (mine.cadence, mine.tz, mine.hour, mine.max_per_day) == (
        "weekly", "Europe/Berlin", 18, 0
    )  # fmt: skip


@pytest.mark.hostile
def test_preferences_reject_bad_choices_and_tokens(
    client: TestClient, log: EventLog, tokens: Tokens, confirmed: str, reliability: Figures
) -> None:
    url = f"/preferences/{tokens.sign('preferences', confirmed)}?lang=ar"
    bad = client.post(url, data={"lang": "en", "topics": [], "kinds": ["news"]})
    assert bad.status_code == 400
    assert "اختر لغة" in bad.text
    wrong = f"/preferences/{tokens.sign('unsubscribe', confirmed)}"
    assert client.get(wrong).status_code == 400
    assert (
        client.post(wrong, data={"lang": "ar", "topics": ["status"], "kinds": ["news"]}).status_code
        == 400
    )
    assert event_types(log) == ["subscriber.requested"]
    reliability.hostile_cases(figures.TOKENS, 2)  # the unsubscribe token, GET and POST


def test_preferences_of_an_unsubscribed_address(
    client: TestClient, log: EventLog, tokens: Tokens, confirmed: str
) -> None:
    subscriptions.unsubscribe(log, confirmed)
    assert client.get(f"/preferences/{tokens.sign('preferences', confirmed)}").status_code == 404


@pytest.mark.hostile
def test_oversized_form_is_refused(client: TestClient, log: EventLog, reliability: Figures) -> None:
    big = {**FORM, "email": "a" * (70 * 1024) + "@example.com"}
    response = client.post("/subscribe?lang=en", data=big, headers={"accept": "text/html"})
    assert response.status_code == 413
    assert "Too much data" in response.text
    assert log.count() == 0
    reliability.hostile_cases(figures.BODIES, 1)


@pytest.mark.hostile
def test_oversized_chunked_body_is_refused(
    client: TestClient, log: EventLog, reliability: Figures
) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(80):
            yield b"email=" + b"a" * 1024

    response = client.post(
        "/subscribe",
        content=chunks(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 413
    assert response.json()["error"].startswith("request body is larger than")
    assert log.count() == 0
    reliability.hostile_cases(figures.BODIES, 1)

"""Email delivery against a real SMTP server (aiosmtpd on 127.0.0.1)."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage

import pytest
from redis import Redis

from sorawatch.events import EventLog
from sorawatch.projections import ledger
from sorawatch.settings import Settings
from sorawatch.testing.alerts import raise_alert
from sorawatch.testing.smtp import SmtpServer
from sorawatch.tokens import Tokens
from sorawatch.workers import email as email_jobs
from sorawatch.workers import mail
from sorawatch.workers.fanout import fan_out
from tests import reliability as figures
from tests.reliability import Figures
from tests.workers.delivery_helpers import (
    events_of,
    failed_jobs,
    keys_of,
    mark_sent,
    run_jobs,
    setup_runtime,
    subscribe,
    with_smtp,
)


@pytest.fixture
def log(redis: Redis, settings: Settings) -> EventLog:
    return EventLog(redis, keys_of(settings))


def parts(message: EmailMessage) -> tuple[str, str]:
    assert message.get_content_type() == "multipart/alternative"
    kinds = [p.get_content_type() for p in message.iter_parts()]
    assert kinds == ["text/plain", "text/html"]  # text first, HTML last
    text_part, html_part = message.iter_parts()
    return str(text_part.get_content()), str(html_part.get_content())  # type: ignore[union-attr]


def test_each_language_gets_one_right_email(
    smtp: SmtpServer, redis: Redis, settings: Settings, log: EventLog
) -> None:
    settings = with_smtp(settings, smtp.port)
    setup_runtime(settings, redis)
    for address, lang in (("ar@example.test", "ar"), ("en@example.test", "en"),
                          ("both@example.test", "both")):  # fmt: skip
        subscribe(log, address, lang)
    subscribe(log, "news-only@example.test", "en", kinds=["news"])  # does not want changes
    subscribe(log, "pending@example.test", "en", confirmed=False)
    _, event = raise_alert(log)
    fan_out(event.id)
    run_jobs(redis)
    assert failed_jobs(redis) == []

    assert sorted(r for m in smtp.messages for r in m.recipients) == [
        "ar@example.test", "both@example.test", "en@example.test",
    ]  # fmt: skip
    tokens = Tokens("test-secret")
    en = smtp.to("en@example.test")[0]
    assert en["Subject"] == "Sora pricing: ChatGPT Plus $20/month"
    ar = smtp.to("ar@example.test")[0]
    # One right-to-left block (RLM, FSI ... PDI), the plan's name isolated inside it.
    assert str(ar["Subject"]).startswith("\u200f\u2068أسعار سورا: \u2068ChatGPT Plus\u2069")
    both = smtp.to("both@example.test")[0]
    assert "أسعار سورا" in str(both["Subject"])
    assert "Sora pricing" in str(both["Subject"])
    # RFC 2047 on the wire: the raw Arabic subject is encoded, not 8-bit.
    raw_ar = next(m.raw for m in smtp.messages if "ar@example.test" in m.recipients)
    subject_line = next(
        line for line in raw_ar.split(b"\r\n") + raw_ar.split(b"\n") if line.startswith(b"Subject:")
    )
    assert b"=?utf-8?" in subject_line.lower()

    for address, message in (("en@example.test", en), ("ar@example.test", ar),
                             ("both@example.test", both)):  # fmt: skip
        assert message["Message-ID"].startswith("<")
        assert message["Date"]
        assert message["List-Id"] == "Sora alerts <alerts.watch.example.test>"
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        link = str(message["List-Unsubscribe"]).strip("<>")
        assert link.startswith("https://watch.example.test/unsubscribe/")
        assert tokens.verify("unsubscribe", link.rsplit("/", 1)[1]) == address
        text, html = parts(message)
        assert link in text
        assert link.replace("&", "&amp;") in html
    _, html_ar = parts(ar)
    assert '<html lang="ar" dir="rtl">' in html_ar
    assert '<div lang="ar" dir="rtl" class="wrapper"' in html_ar
    _, html_en = parts(en)
    assert '<html lang="en" dir="ltr">' in html_en
    assert 'dir="rtl"' not in html_en
    _, html_both = parts(both)
    assert '<div lang="ar" dir="rtl"' in html_both
    assert '<div lang="en" dir="ltr"' in html_both

    # A second fan-out and a re-run of the batch send nothing more.
    fan_out(event.id)
    email_jobs.deliver_email("al_test1", ["en@example.test", "ar@example.test"], 0)
    run_jobs(redis)
    assert len(smtp.messages) == 3
    assert ledger.status(redis, log.keys, "al_test1", "email", "en@example.test") == "sent"
    succeeded = events_of(log, "delivery.succeeded")
    assert sum(len(e.data["results"]) for e in succeeded) == 3


@pytest.mark.hostile
def test_crlf_in_a_title_cannot_inject_headers(
    smtp: SmtpServer, redis: Redis, settings: Settings, log: EventLog, reliability: Figures
) -> None:
    settings = with_smtp(settings, smtp.port)
    setup_runtime(settings, redis)
    subscribe(log, "en@example.test", "en", kinds=["news"])
    evil = "Sora news\r\nBcc: victim@example.test\r\nX-Evil: 1"
    source = {"url": "https://x.test/a", "title": evil, "publisher": "X", "lang": "en",
              "published": None}  # fmt: skip
    raise_alert(log, kind="news", before=None, after=None, title=evil, sources=[source])
    email_jobs.deliver_email("al_test1", ["en@example.test"], 0)
    [received] = smtp.messages
    assert received.recipients == ["en@example.test"]
    message = received.message
    assert message["Bcc"] is None
    assert message["X-Evil"] is None
    assert "\n" not in str(message["Subject"])
    assert str(message["Subject"]).startswith("Sora news (Pricing): Sora news")
    reliability.hostile_cases(figures.CRLF_TITLES, 1)


def test_450_then_250_is_delivered_once(
    smtp: SmtpServer, redis: Redis, settings: Settings, log: EventLog
) -> None:
    settings = with_smtp(settings, smtp.port)
    setup_runtime(settings, redis)
    subscribe(log, "en@example.test", "en")
    _, event = raise_alert(log)
    smtp.fail_next(1, 450)
    fan_out(event.id)
    run_jobs(redis)
    assert len(smtp.to("en@example.test")) == 1
    assert [code for _, code in smtp.recorder.answered] == [450, 250]
    assert ledger.status(redis, log.keys, "al_test1", "email", "en@example.test") == "sent"
    [failed] = events_of(log, "delivery.failed")
    assert failed.data["results"][0]["error"].startswith("450")
    assert ledger.dead_letters(redis, log.keys) == []
    assert ledger.pending(redis, log.keys) == []


def test_550_is_recorded_and_not_retried(
    smtp: SmtpServer, redis: Redis, settings: Settings, log: EventLog
) -> None:
    settings = with_smtp(settings, smtp.port)
    setup_runtime(settings, redis)
    for address in ("a@example.test", "b@example.test", "gone@example.test"):
        subscribe(log, address, "en")
    smtp.refuse("gone@example.test", 550)
    _, event = raise_alert(log)
    fan_out(event.id)
    run_jobs(redis)
    # One refusal does not stop the others.
    assert sorted(r for m in smtp.messages for r in m.recipients) == [
        "a@example.test",
        "b@example.test",
    ]
    assert [a for a, _ in smtp.recorder.answered].count("gone@example.test") == 1
    assert ledger.status(redis, log.keys, "al_test1", "email", "gone@example.test") == "abandoned"
    [letter] = ledger.dead_letters(redis, log.keys)
    assert letter["recipient"] == "gone@example.test"
    assert letter["permanent"] is True
    assert letter["error"].startswith("550")


def test_transient_failures_end_as_dead_letters_after_the_schedule(
    smtp: SmtpServer, redis: Redis, settings: Settings, log: EventLog
) -> None:
    settings = with_smtp(settings, smtp.port)
    setup_runtime(settings, redis)
    subscribe(log, "busy@example.test", "en")
    smtp.refuse("busy@example.test", 451)
    _, event = raise_alert(log)
    fan_out(event.id)
    run_jobs(redis)
    tries = [a for a, _ in smtp.recorder.answered].count("busy@example.test")
    assert tries == len(settings.workers.retry_schedule)
    [letter] = ledger.dead_letters(redis, log.keys)
    assert letter["permanent"] is False
    assert letter["attempt"] == len(settings.workers.retry_schedule) - 1


def test_a_rerun_after_a_crash_does_not_resend_what_was_sent(
    smtp: SmtpServer, redis: Redis, settings: Settings, log: EventLog
) -> None:
    settings = with_smtp(settings, smtp.port)
    setup_runtime(settings, redis)
    subscribe(log, "a@example.test", "en")
    subscribe(log, "b@example.test", "en")
    raise_alert(log)
    # As if a worker sent to a@ and was killed before writing its batch event.
    mark_sent(settings, "al_test1", "email", "a@example.test")
    email_jobs.deliver_email("al_test1", ["a@example.test", "b@example.test"], 0)
    assert [m.recipients for m in smtp.messages] == [["b@example.test"]]
    [event] = events_of(log, "delivery.succeeded")
    assert sorted(r["recipient"] for r in event.data["results"]) == [
        "a@example.test",
        "b@example.test",
    ]


def test_renders_once_per_language_per_batch(
    smtp: SmtpServer, redis: Redis, settings: Settings, log: EventLog,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    settings = with_smtp(settings, smtp.port)
    setup_runtime(settings, redis)
    addresses = [f"u{i}@example.test" for i in range(12)]
    for i, address in enumerate(addresses):
        subscribe(log, address, ("ar", "en", "both")[i % 3])
    raise_alert(log)
    calls: list[str] = []
    real = email_jobs.render_alert

    def counting(alert: dict[str, object], pref: str, public_url: str) -> email_jobs.Rendered:
        calls.append(pref)
        return real(alert, pref, public_url)

    monkeypatch.setattr(email_jobs, "render_alert", counting)
    email_jobs.deliver_email("al_test1", addresses, 0)
    assert sorted(calls) == ["ar", "both", "en"]
    assert len(smtp.messages) == 12
    links = {str(m.message["List-Unsubscribe"]) for m in smtp.messages}
    assert len(links) == 12  # each recipient has their own token


def test_confirmation_mail(
    smtp: SmtpServer, redis: Redis, settings: Settings, log: EventLog
) -> None:
    settings = with_smtp(settings, smtp.port)
    setup_runtime(settings, redis)
    subscribe(log, "new@example.test", "ar", confirmed=False)
    assert email_jobs.send_confirmation("new@example.test") == "sent"
    [message] = smtp.to("new@example.test")
    assert str(message["Subject"]) == "أكِّد اشتراكك في تنبيهات سورا"
    text, html = parts(message)
    link = next(w for w in text.split() if "/confirm/" in w)
    assert link.startswith("https://watch.example.test/confirm/")
    assert Tokens("test-secret").verify("confirm", link.rsplit("/", 1)[1]) == "new@example.test"
    assert '<html lang="ar" dir="rtl">' in html
    subscribe(log, "done@example.test", "en", confirmed=True)
    assert email_jobs.send_confirmation("done@example.test") == "skipped"


def test_outbox_when_no_smtp_is_configured(redis: Redis, settings: Settings, log: EventLog) -> None:
    settings = with_smtp(settings, None)
    setup_runtime(settings, redis)
    subscribe(log, "en@example.test", "en")
    raise_alert(log)
    result = email_jobs.deliver_email("al_test1", ["en@example.test"], 0)
    assert result["sent"] == 1
    [path] = list(settings.outbox_dir.glob("*.eml"))
    assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" in path.read_bytes()


def test_smtp_pool_reuses_connections(smtp: SmtpServer, settings: Settings) -> None:
    settings = with_smtp(settings, smtp.port, concurrency=2)
    mailer = mail.build(settings)
    messages = []
    for i in range(6):
        m = EmailMessage()
        m["From"] = settings.smtp.from_
        m["To"] = f"u{i}@example.test"
        m["Subject"] = "hi"
        m.set_content("hello")
        messages.append(m)

    async def go() -> list[bool]:
        try:
            return [r.ok for r in await asyncio.gather(*(mailer.send(m) for m in messages))]
        finally:
            await mailer.close()

    assert asyncio.run(go()) == [True] * 6
    assert len(smtp.messages) == 6
    assert len(mailer._all) <= 2  # type: ignore[attr-defined]


# Plain-text AUTH is what a test server on 127.0.0.1 can offer; aiosmtpd warns about it.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_smtp_auth_from_settings(redis: Redis, settings: Settings, log: EventLog) -> None:
    with SmtpServer(auth=("alerts", "s3cret")) as server:
        good = with_smtp(settings, server.port, username="alerts", password="s3cret")
        setup_runtime(good, redis)
        subscribe(log, "en@example.test", "en")
        subscribe(log, "two@example.test", "en")
        raise_alert(log)
        bad = with_smtp(settings, server.port, username="alerts", password="wrong")
        setup_runtime(bad, redis)
        result = email_jobs.deliver_email("al_test1", ["two@example.test"], 0)
        assert result["sent"] == 0
        [failed] = events_of(log, "delivery.failed")
        assert "SMTP setup" in failed.data["results"][0]["error"]
        assert "s3cret" not in failed.to_json()
        setup_runtime(good, redis)
        assert email_jobs.deliver_email("al_test1", ["en@example.test"], 0)["sent"] == 1
        assert [m.recipients for m in server.messages] == [["en@example.test"]]


def test_a_delayed_retry_is_scheduled_and_runs(
    smtp: SmtpServer, redis: Redis, settings: Settings, log: EventLog
) -> None:
    import dataclasses

    from rq.job import Job as RqJob
    from rq.registry import ScheduledJobRegistry
    from rq.serializers import JSONSerializer

    from sorawatch.events import queue

    settings = with_smtp(settings, smtp.port)
    settings = dataclasses.replace(
        settings, workers=dataclasses.replace(settings.workers, retry_schedule=[0, 300])
    )
    setup_runtime(settings, redis)
    subscribe(log, "en@example.test", "en")
    raise_alert(log)
    smtp.fail_next(1, 450)
    assert email_jobs.deliver_email("al_test1", ["en@example.test"], 0)["retry"] == 1
    [failed] = events_of(log, "delivery.failed")
    assert failed.data["results"][0]["retry_at"] > failed.at
    q = queue("email", redis)
    [jid] = ScheduledJobRegistry(queue=q).get_job_ids()
    job = RqJob.fetch(jid, connection=redis, serializer=JSONSerializer)
    assert job.args == ["al_test1", ["en@example.test"], 1]
    assert job.kwargs == {}
    assert (job.timeout or 0) >= settings.smtp.deadline
    q.enqueue_job(job)  # as the scheduler does when its time comes (not waiting 300 s here)
    run_jobs(redis)
    assert failed_jobs(redis) == []
    assert len(smtp.to("en@example.test")) == 1
    assert ledger.status(redis, log.keys, "al_test1", "email", "en@example.test") == "sent"

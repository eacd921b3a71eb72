"""Digests and the daily cap, against real Redis and a real SMTP server (aiosmtpd).

Days pass by the clock (``sorawatch.clock``), never by sleeping: each step sets the
instant, raises alerts or runs the workers' burst (which looks for digests due).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from redis import Redis

from sorawatch import clock, render, schedule
from sorawatch.commands import subscriptions
from sorawatch.errors import ValidationError
from sorawatch.events import EventLog
from sorawatch.keys import Keys
from sorawatch.projections import ledger
from sorawatch.settings import Settings
from sorawatch.testing.alerts import raise_alert
from sorawatch.testing.smtp import SmtpServer
from sorawatch.workers import digest as digests
from sorawatch.workers import email as email_jobs
from sorawatch.workers import mail, worker
from sorawatch.workers.fanout import fan_out
from tests.faults.procs import Proc, wait_for, write_config
from tests.workers.delivery_helpers import failed_jobs, keys_of, setup_runtime, with_smtp


@pytest.fixture(autouse=True)
def real_clock_after() -> Iterator[None]:
    yield
    clock.use(None)


@pytest.fixture
def log(redis: Redis, settings: Settings) -> EventLog:
    return EventLog(redis, keys_of(settings))


def at(text: str) -> datetime:
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    clock.use(when)
    return when


def subscribe(log: EventLog, email: str, lang: str = "en", **timing: object) -> None:
    subscriptions.request(
        log,
        email,
        lang,
        None,
        None,
        confirmed=True,
        timing=schedule.choose(**timing),  # type: ignore[arg-type]
    )


def alert(log: EventLog, n: int, when: str, **changes: object) -> None:
    """Raise alert ``n`` at ``when`` and fan it out."""
    at(when)
    _, event = raise_alert(
        log,
        alert_id=f"al_{n}",
        story=f"st_{n}",
        raised_at=when,
        title=f"Sora story number {n}",
        sources=[
            {
                "url": f"https://news.example.test/{n}",
                "title": f"Sora story number {n}",
                "publisher": "Example News",
                "lang": "en",
                "published": when,
            }
        ],
        **changes,
    )
    fan_out(event.id)


def work(settings: Settings, redis: Redis, when: str) -> None:
    """The workers' burst at ``when`` (their clock comes from the settings)."""
    worker.burst(dataclasses.replace(settings, now=at(when)), redis, ("changes", "email"))
    assert failed_jobs(redis) == []


def bodies(message: EmailMessage) -> str:
    return "\n".join(str(p.get_content()) for p in message.iter_parts())


# -- the schedule -----------------------------------------------------------------


def test_boundaries_follow_the_subscribers_wall_clock() -> None:
    riyadh = schedule.Schedule("daily", "Asia/Riyadh", 8)
    now = datetime(2026, 12, 4, 4, 59, tzinfo=UTC)  # 07:59 in Riyadh
    assert riyadh.last(now) == datetime(2026, 12, 3, 5, 0, tzinfo=UTC)
    assert riyadh.next(now) == datetime(2026, 12, 4, 5, 0, tzinfo=UTC)
    assert riyadh.last(datetime(2026, 12, 4, 5, 0, tzinfo=UTC)) == datetime(
        2026, 12, 4, 5, 0, tzinfo=UTC
    )
    weekly = schedule.Schedule("weekly", "UTC", 8)
    friday = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    assert weekly.last(friday) == datetime(2026, 11, 30, 8, 0, tzinfo=UTC)  # Monday
    assert weekly.next(friday) == datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    # 08:00 in Berlin stays 08:00 across the change to summer time (29 March 2026).
    berlin = schedule.Schedule("daily", "Europe/Berlin", 8)
    assert berlin.next(datetime(2026, 3, 28, 8, 0, tzinfo=UTC)) == datetime(
        2026, 3, 29, 6, 0, tzinfo=UTC
    )
    assert berlin.day_start(datetime(2026, 3, 28, 23, 30, tzinfo=UTC)) == datetime(
        2026, 3, 28, 23, 0, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("choice", "named"),
    [
        ({"cadence": "hourly"}, "cadence 'hourly'"),
        ({"tz": "Mars/Olympus"}, "time zone 'Mars/Olympus'"),
        ({"hour": "25"}, "hour '25'"),
        ({"max_per_day": "-1"}, "max-per-day '-1'"),
        ({"max_per_day": "many"}, "max-per-day 'many'"),
    ],
)
def test_a_bad_choice_is_refused_by_name(choice: dict[str, str], named: str) -> None:
    with pytest.raises(ValidationError, match=named):
        schedule.choose(**choice)


# -- digests ------------------------------------------------------------------------


def test_a_daily_subscriber_gets_one_digest_a_day_with_every_alert(
    smtp: SmtpServer, redis: Redis, settings: Settings, log: EventLog
) -> None:
    settings = with_smtp(settings, smtp.port)
    setup_runtime(settings, redis)
    at("2026-12-01T09:00:00Z")
    subscribe(log, "daily@example.test", cadence="daily", tz="Asia/Riyadh", hour=8)
    subscribe(log, "now@example.test")
    alert(log, 1, "2026-12-01T10:00:00Z")
    alert(log, 2, "2026-12-01T18:00:00Z", topic="status", kind="news", after=None)
    work(settings, redis, "2026-12-01T19:00:00Z")
    assert [m["Subject"] for m in smtp.to("daily@example.test")] == []  # no instant mail
    assert len(smtp.to("now@example.test")) == 2
    work(settings, redis, "2026-12-02T04:59:00Z")  # 07:59 in Riyadh: not yet
    assert smtp.to("daily@example.test") == []
    work(settings, redis, "2026-12-02T05:00:30Z")
    [digest] = smtp.to("daily@example.test")
    assert digest["Subject"] == "Sora daily digest, 2 December 2026: 2 updates"
    assert digest["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = bodies(digest)
    assert "Sora story number 2" in text
    assert text.index("What changed") < text.index("News: Status")
    # Again in the same period, and on a day with nothing: nothing more.
    work(settings, redis, "2026-12-02T06:00:00Z")
    work(settings, redis, "2026-12-03T05:01:00Z")
    assert len(smtp.to("daily@example.test")) == 1
    alert(log, 3, "2026-12-03T07:00:00Z")
    work(settings, redis, "2026-12-04T05:00:00Z")
    _first, second = smtp.to("daily@example.test")
    assert "Sora story number 3" in bodies(second)
    assert "Sora story number 1" not in bodies(second)
    sent = ledger.counts(redis, keys_of(settings), "digest-20261204T050000Z", "email")
    assert sent.get("sent") == 1


def test_a_weekly_arabic_digest_reads_right_to_left_with_arabic_plurals(
    smtp: SmtpServer, redis: Redis, settings: Settings, log: EventLog
) -> None:
    settings = with_smtp(settings, smtp.port)
    setup_runtime(settings, redis)
    at("2026-11-29T09:00:00Z")
    subscribe(log, "weekly@example.test", "ar", cadence="weekly")
    for n, day in enumerate(("2026-11-30", "2026-12-02", "2026-12-04"), start=1):
        alert(log, n, f"{day}T10:00:00Z")
    work(settings, redis, "2026-12-06T23:00:00Z")
    assert smtp.to("weekly@example.test") == []
    work(settings, redis, "2026-12-07T08:00:00Z")
    [digest] = smtp.to("weekly@example.test")
    # One isolated right-to-left block, so a left-to-right client keeps its order.
    assert digest["Subject"] == render.line("ملخص سورا الأسبوعي حتى 7 ديسمبر 2026: 3 تحديثات", "ar")
    html = digest.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert 'dir="rtl"' in html
    assert "ما الذي تغيّر" in html


def test_past_the_daily_cap_alerts_wait_for_the_morning_and_none_is_lost(
    smtp: SmtpServer, redis: Redis, settings: Settings, log: EventLog
) -> None:
    settings = with_smtp(settings, smtp.port)
    setup_runtime(settings, redis)
    at("2026-12-01T00:00:00Z")
    subscribe(log, "capped@example.test", max_per_day=3, tz="Asia/Riyadh", hour=8)
    subscribe(log, "free@example.test", max_per_day=0)
    for n in range(1, 6):
        alert(log, n, f"2026-12-01T{8 + n:02d}:00:00Z")
        work(settings, redis, f"2026-12-01T{8 + n:02d}:00:30Z")
    assert len(smtp.to("free@example.test")) == 5
    assert len(smtp.to("capped@example.test")) == 3
    work(settings, redis, "2026-12-02T04:59:00Z")  # 07:59 in Riyadh: still three
    assert len(smtp.to("capped@example.test")) == 3
    work(settings, redis, "2026-12-02T05:00:00Z")
    *_, catch_up = smtp.to("capped@example.test")
    assert catch_up["Subject"] == "Sora: 2 more updates from 1 December 2026"
    text = bodies(catch_up)
    assert "Sora story number 4" in text
    assert "Sora story number 5" in text
    assert "at most 3 alerts a day" in text
    # A new day: the count starts again, and the catch-up is not sent twice.
    alert(log, 6, "2026-12-02T09:00:00Z")
    work(settings, redis, "2026-12-02T09:00:30Z")
    work(settings, redis, "2026-12-03T05:00:00Z")
    subjects = [m["Subject"] for m in smtp.to("capped@example.test")]
    assert len(subjects) == 5
    assert subjects.count(catch_up["Subject"]) == 1


def test_switching_to_a_digest_tells_only_what_came_after(
    smtp: SmtpServer, redis: Redis, settings: Settings, log: EventLog
) -> None:
    settings = with_smtp(settings, smtp.port)
    setup_runtime(settings, redis)
    at("2026-12-01T00:00:00Z")
    subscribe(log, "switch@example.test")
    alert(log, 1, "2026-12-01T09:00:00Z")
    work(settings, redis, "2026-12-01T09:00:30Z")
    at("2026-12-01T12:00:00Z")
    subscriptions.update(log, "switch@example.test", timing=schedule.choose(cadence="daily"))
    alert(log, 2, "2026-12-01T15:00:00Z")
    work(settings, redis, "2026-12-02T08:00:00Z")
    _, digest = smtp.to("switch@example.test")
    assert "Sora story number 2" in bodies(digest)
    assert "Sora story number 1" not in bodies(digest)


def test_killed_right_after_a_digest_went_out_the_rerun_records_it(
    smtp: SmtpServer, redis: Redis, settings: Settings, log: EventLog
) -> None:
    """The period is marked done only once the sent mark is in Redis: a worker dying
    between the two leaves a re-run that finds the mark and records the delivery, rather
    than an empty period and a digest the ledger never heard of."""
    settings = with_smtp(settings, smtp.port, concurrency=1)
    setup_runtime(settings, redis)
    at("2026-12-01T09:00:00Z")
    for address in ("a@example.test", "b@example.test"):
        subscribe(log, address, cadence="daily")
    alert(log, 1, "2026-12-01T10:00:00Z")
    at("2026-12-02T08:00:30Z")
    delivery = digests.digest_id(datetime(2026, 12, 2, 8, tzinfo=UTC))
    batch = ["a@example.test", "b@example.test"]
    child = os.fork()
    if child == 0:  # a worker that dies the moment its first digest is done
        real = digests.done

        def done_then_die(redis: Redis, keys: Keys, contents: digests.Contents) -> None:
            real(redis, keys, contents)
            os._exit(9)

        digests.done = done_then_die  # type: ignore[assignment]
        asyncio.run(email_jobs.send_digests(log, settings, mail.build(settings), delivery, batch))
        os._exit(0)
    assert os.waitpid(child, 0)[1] >> 8 == 9
    assert len(smtp.to("a@example.test")) == 1
    asyncio.run(email_jobs.send_digests(log, settings, mail.build(settings), delivery, batch))
    assert len(smtp.to("a@example.test")) == 1
    # b's digest was in flight at the kill (sent, not yet marked): the bound, at most
    # two a lane, allows it to go twice, as for alerts.
    assert len(smtp.to("b@example.test")) == 2
    assert ledger.counts(redis, keys_of(settings), delivery, "email") == {"sent": 2}


def test_running_workers_send_digests_on_schedule_by_themselves(
    smtp: SmtpServer, redis_url: str, redis: Redis, settings: Settings, log: EventLog,
    tmp_path: Path,
) -> None:  # fmt: skip
    """`sorawatch work` (no command from anyone) sends the digest due at its clock, and
    stops when asked."""
    setup_runtime(with_smtp(settings, smtp.port), redis)
    at("2026-12-01T09:00:00Z")
    subscribe(log, "daily@example.test", cadence="daily")
    alert(log, 1, "2026-12-01T10:00:00Z")
    config = write_config(
        tmp_path / "sorawatch.toml", redis_url, settings.redis.prefix, tmp_path / "data",
        f'[smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\n',
    )  # fmt: skip
    config.write_text('now = "2026-12-02T08:00:30Z"\n' + config.read_text("utf-8"), "utf-8")
    workers = Proc(config, redis_url, "work", "--queues", "email", log=tmp_path / "work.log")
    try:
        wait_for(lambda: len(smtp.to("daily@example.test")) == 1, 120, "the digest")
    finally:
        assert workers.stop() == 0, workers.output()
    [digest] = smtp.to("daily@example.test")
    assert digest["Subject"] == "Sora daily digest, 2 December 2026: 1 update"

"""End to end, through the real command line: feeds served on 127.0.0.1 → `sorawatch
watch --once` → `sorawatch work --burst` → mail in a real SMTP server and signed
webhooks in a real HTTP receiver. Then every way the same news can come back, and
none of them sends anything twice.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis
from standardwebhooks import Webhook as Verifier

from sorawatch.commands import endpoints, subscriptions
from sorawatch.events import EventLog, queue
from sorawatch.keys import Keys
from sorawatch.projections import alerts, ledger, webhooks
from sorawatch.testing.feeds import FeedServer, Route
from sorawatch.testing.http import HttpReceiver
from sorawatch.testing.smtp import SmtpServer
from sorawatch.tokens import Tokens
from tests.faults.news import rss

pytestmark = pytest.mark.slow

PREFIX = "e2e"
SECRET = "e2e-secret-e2e-secret-e2e-secret-e2e"


WEATHER = ("Weather: sunny week ahead", "https://outlet.example.test/weather", "Sun all week.")
NEWS_EN = (
    "Sora is now available to ChatGPT Plus users at $20 a month",
    "https://a.example.test/sora-plus",
    "OpenAI said its Sora video model is now included in ChatGPT Plus for $20 a month.",
)
SAME_STORY = (NEWS_EN[0], "https://b.example.test/2025/sora-plus", NEWS_EN[2])
OTHER_WORDS = (
    "OpenAI opens Sora to ChatGPT Plus subscribers for $20 per month",
    "https://c.example.test/openai-sora-plus",
    "Sora, OpenAI's video generator, comes to ChatGPT Plus at $20/month.",
)
ARABIC = (
    "سورا من OpenAI متاح الآن لمشتركي ChatGPT Plus مقابل 20 دولارا شهريا",
    "https://ar.example.test/sora",
    "أعلنت OpenAI أن نموذج الفيديو سورا متاح لمشتركي ChatGPT Plus مقابل 20 دولارا في الشهر.",
)
PEOPLE = {"ar@example.test": "ar", "en@example.test": "en", "both@example.test": "both"}


@pytest.fixture
def world(redis_url: str, redis: Redis, tmp_path: Path) -> Iterator[dict[str, object]]:
    with FeedServer() as feeds, SmtpServer() as smtp, HttpReceiver() as rx:
        paths = {"a": "/a.xml", "b": "/b.xml", "c": "/c.xml", "ar": "/ar.xml"}
        for name, path in paths.items():
            feeds.route(path, Route(body=rss([WEATHER], "ar" if name == "ar" else "en")))
        config = tmp_path / "sorawatch.toml"
        # Outlet a is first-party: what it says is confirmed alone.
        feed_tables = "".join(
            f'[[feeds]]\nurl = "{feeds.url(p)}"\nname = "Outlet {n}"\n'
            f'lang = "{"ar" if n == "ar" else "en"}"\n'
            + ('trust = "official"\n' if n == "a" else "")
            + "\n"
            for n, p in paths.items()
        )
        config.write_text(
            f'[redis]\nurl = "{redis_url}"\nprefix = "{PREFIX}"\n\n'
            f'[smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\n'
            f'from = "Sorawatch <alerts@watch.example.test>"\n\n'
            f'[web]\nbase_url = "https://watch.example.test"\nsecret = "{SECRET}"\n\n'
            f"[webhooks]\nallow_private = true\ntimeout = 5\nretry_schedule = [0, 0, 0]\n\n"
            f"[workers]\nretry_schedule = [0, 0, 0]\n\n"
            f'[data]\ndir = "{tmp_path / "data"}"\n\n' + feed_tables,
            encoding="utf-8",
        )
        yield {"feeds": feeds, "smtp": smtp, "rx": rx, "config": config, "paths": paths}


def sw(config: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SORAWATCH_")}
    return subprocess.Popen(
        [sys.executable, "-m", "sorawatch.cli", "-c", str(config), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def run(config: Path, *args: str) -> str:
    proc = sw(config, *args)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, f"sorawatch {' '.join(args)} failed:\n{out}\n{err}"
    return out


def cycle(config: Path) -> None:
    run(config, "watch", "--once")
    run(config, "work", "--burst")


def test_news_reaches_everyone_once(world: dict[str, object], redis: Redis) -> None:
    feeds: FeedServer = world["feeds"]  # type: ignore[assignment]
    smtp: SmtpServer = world["smtp"]  # type: ignore[assignment]
    rx: HttpReceiver = world["rx"]  # type: ignore[assignment]
    config: Path = world["config"]  # type: ignore[assignment]
    paths: dict[str, str] = world["paths"]  # type: ignore[assignment]
    keys = Keys(PREFIX)
    log = EventLog(redis, keys)
    for address, lang in PEOPLE.items():
        subscriptions.request(log, address, lang, None, None, confirmed=True)
    hook, secret = endpoints.register(log, rx.url("/hook"), allow_private=True)

    # First poll of every feed is a baseline: recorded, nobody alerted.
    cycle(config)
    assert smtp.messages == []
    assert rx.requests == []

    # The news breaks on one outlet.
    feeds.route(paths["a"], Route(body=rss([NEWS_EN, WEATHER])))
    cycle(config)
    raised = [a for a in alerts.recent(redis, keys, limit=100) if not a.get("baseline")]
    assert raised, "the news raised no alert"
    alert_ids = {a["alert_id"] for a in raised}
    assert any(a["topic"] == "pricing" and a["kind"] == "change" for a in raised)

    # One message per story by mail; webhooks get it and one typed message per change.
    stories_told = {a["alert_id"] for a in raised if a["kind"] == "story"}
    assert len(stories_told) == 1
    tokens = Tokens(SECRET)
    for address, lang in PEOPLE.items():
        mails = smtp.to(address)
        assert len(mails) == len(stories_told), (address, [str(m["Subject"]) for m in mails])
        subjects = [str(m["Subject"]) for m in mails]
        assert len(set(subjects)) == len(subjects)
        for m in mails:
            subject = str(m["Subject"])
            has_ar = any("\u0600" <= c <= "\u06ff" for c in subject)
            assert has_ar == (lang in ("ar", "both")), subject
            assert ("Sora" in subject or "OpenAI" in subject) == (lang in ("en", "both")) or has_ar
            assert m["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            link = str(m["List-Unsubscribe"]).strip("<>")
            assert tokens.verify("unsubscribe", link.rsplit("/", 1)[1]) == address
            html = m.get_body(("html",)).get_content()  # type: ignore[union-attr]
            assert ('dir="rtl"' in html) == (lang in ("ar", "both"))
    pricing = next(a for a in raised if a["topic"] == "pricing" and a["kind"] == "change")
    en_mail = smtp.to("en@example.test")[0]
    # the subject names the most important change; the body tells every change
    assert str(en_mail["Subject"]) == "Sora status: Released", str(en_mail["Subject"])
    assert "ChatGPT Plus" in en_mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]

    hooks = rx.to("/hook")
    assert len(hooks) == len(alert_ids)
    bodies = [Verifier(secret).verify(r.body.decode(), r.headers) for r in hooks]
    assert {b["data"]["alert_id"] for b in bodies} == alert_ids  # type: ignore[index]
    assert "sora.pricing.changed" in {b["type"] for b in bodies}  # type: ignore[index]
    assert len({r.headers["webhook-id"] for r in hooks}) == len(alert_ids)
    assert ledger.status(redis, keys, pricing["alert_id"], "webhook", hook.id) == "sent"

    mail_count, hook_count = len(smtp.messages), len(rx.requests)

    # The same story from two more feeds, other words, and Arabic; then a re-poll.
    feeds.route(paths["b"], Route(body=rss([SAME_STORY, WEATHER])))
    feeds.route(paths["c"], Route(body=rss([OTHER_WORDS, SAME_STORY, WEATHER])))
    feeds.route(paths["ar"], Route(body=rss([ARABIC, WEATHER], "ar")))
    cycle(config)
    cycle(config)
    # A re-run of the same jobs (RQ is at-least-once).
    first_item = next(e for _, e in log.read() if e.type == "item.seen" and not e.data["baseline"])
    alert_event = next(e for _, e in log.read() if e.type == "alert.raised")
    queue("changes", redis).enqueue_call(
        "sorawatch.workers.jobs.process_change", args=(first_item.id,)
    )
    queue("changes", redis).enqueue_call("sorawatch.workers.fanout.fan_out", args=(alert_event.id,))
    email_batch = next(e for _, e in log.read() if e.type == "delivery.succeeded")
    recipients = [r["recipient"] for r in email_batch.data["results"]]
    channel = email_batch.data["channel"]
    func = (
        "sorawatch.workers.email.deliver_email"
        if channel == "email"
        else "sorawatch.workers.webhook.deliver_webhooks"
    )
    queue(channel, redis).enqueue_call(func, args=(email_batch.data["alert_id"], recipients, 0))
    # Two workers at once.
    both = [sw(config, "work", "--burst"), sw(config, "work", "--burst")]
    for proc in both:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err

    assert len(smtp.messages) == mail_count, Counter(
        str(m.message["Subject"]) for m in smtp.messages
    )
    assert len(rx.requests) == hook_count
    for address in PEOPLE:
        per_alert = Counter(str(m["Subject"]) for m in smtp.to(address))
        assert max(per_alert.values()) == 1
    assert ledger.dead_letters(redis, keys) == []


def test_flapping_mail_and_webhook_endpoints(world: dict[str, object], redis: Redis) -> None:
    feeds: FeedServer = world["feeds"]  # type: ignore[assignment]
    smtp: SmtpServer = world["smtp"]  # type: ignore[assignment]
    rx: HttpReceiver = world["rx"]  # type: ignore[assignment]
    config: Path = world["config"]  # type: ignore[assignment]
    paths: dict[str, str] = world["paths"]  # type: ignore[assignment]
    keys = Keys(PREFIX)
    log = EventLog(redis, keys)
    for address in ("busy@example.test", "gone@example.test", "ok@example.test"):
        subscriptions.request(log, address, "en", None, None, confirmed=True)
    flaky, flaky_secret = endpoints.register(log, rx.url("/flaky"), allow_private=True)
    gone, _ = endpoints.register(log, rx.url("/gone"), allow_private=True)
    cycle(config)  # baseline

    smtp.script("busy@example.test", [450])  # busy once, then fine
    smtp.refuse("gone@example.test", 550)  # no such mailbox, ever
    rx.script("/flaky", [500, 500, 200])
    rx.script("/gone", [410])
    feeds.route(paths["a"], Route(body=rss([NEWS_EN, WEATHER])))
    cycle(config)
    told = [a for a in alerts.recent(redis, keys, limit=100) if not a.get("baseline")]
    n = len([a for a in told if "email" in a["want"]])  # mails: one per story
    hooks = len(told)  # webhooks: the story and each change
    assert n >= 1

    # 450 then 250: delivered once per alert.
    busy = Counter(str(m["Subject"]) for m in smtp.to("busy@example.test"))
    assert len(busy) == n
    assert set(busy.values()) == {1}
    assert len(smtp.to("ok@example.test")) == n
    # 550: recorded, not retried.
    assert smtp.to("gone@example.test") == []
    refusals = [a for a, code in smtp.recorder.answered if a == "gone@example.test"]
    assert len(refusals) == n
    letters = ledger.dead_letters(redis, keys, channel="email")
    assert {d["recipient"] for d in letters} == {"gone@example.test"}
    assert all(d["permanent"] and d["error"].startswith("550") for d in letters)
    # 500, 500, then 200: delivered, one webhook-id per alert, every attempt signed.
    requests = rx.to("/flaky")
    assert len(requests) == hooks + 2
    assert len({r.headers["webhook-id"] for r in requests}) == hooks
    for r in requests:
        Verifier(flaky_secret).verify(r.body.decode(), r.headers)
    for a in alerts.recent(redis, keys, limit=100):
        assert ledger.status(redis, keys, a["alert_id"], "webhook", flaky.id) == "sent"
    # 410: the endpoint is disabled after its first answer and hears nothing more.
    assert len(rx.to("/gone")) == 1
    found = webhooks.get(redis, keys, gone.id)
    assert found is not None
    assert found.active is False
    assert found.disabled_reason == "410 Gone"

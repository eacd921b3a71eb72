"""Measure delivery: fan-out size, mail and webhook throughput, rendering cost.

    python bench/delivery.py [--subscribers N] [--mails N] [--hooks N]

Everything runs on 127.0.0.1: a redis-server of its own, an aiosmtpd server, an
HTTP receiver. Each figure is printed beside a baseline measured in the same run
(one SMTP connection vs the pool; one endpoint at a time vs concurrent; rendering
per recipient vs once per language). Exits 0; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from redis import Redis

from sorawatch.commands import endpoints
from sorawatch.events import EventLog, queue
from sorawatch.keys import Keys
from sorawatch.projections import subscribers
from sorawatch.settings import DataSettings, Settings, SmtpSettings, WebhookSettings, WebSettings
from sorawatch.testing.alerts import raise_alert
from sorawatch.testing.http import HttpReceiver
from sorawatch.testing.redis import RedisServer
from sorawatch.testing.smtp import SmtpServer
from sorawatch.workers import email as email_jobs
from sorawatch.workers import fanout, runtime
from sorawatch.workers import webhook as webhook_jobs
from sorawatch.workers.mail.smtp import SmtpMailer


def timed(fn: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def bench_fanout(log: EventLog, settings: Settings, n: int) -> None:
    redis = log.redis
    with redis.pipeline(transaction=False) as pipe:
        # Straight into the projection's index: the bench is about fan-out, not sign-ups.
        ns = log.keys.projection("subscribers")
        for i in range(n):
            pipe.zadd(f"{ns}:want:pricing:change", {f"user{i:06d}@example.test": 0})
            if i % 5000 == 4999:
                pipe.execute()
        pipe.execute()
    alert, _ = raise_alert(log, alert_id="al_fanout")
    counts, seconds = timed(lambda: fanout.fan_out_alert(log, alert, settings))
    jobs = queue("email", redis).count
    # The stored plan is deleted once the jobs are enqueued; its size, recomputed:
    plan_bytes = len(
        json.dumps(fanout.make_plan(redis, log.keys, alert, settings.workers.batch_size))
    )
    print(
        f"fan-out: {counts['email']} subscribers → {jobs} email batches of ≤{settings.workers.batch_size} "
        f"in {seconds:.2f} s ({counts['email'] / seconds:,.0f} recipients/s); plan {plan_bytes / 1e6:.1f} MB"
    )
    _, again = timed(lambda: fanout.fan_out_alert(log, alert, settings))
    print(f"fan-out re-run (enqueues nothing): {again * 1000:.1f} ms")
    queue("email", redis).empty()


def bench_render(alert: dict[str, Any], n: int) -> None:
    prefs = ("ar", "en", "both")

    def per_recipient() -> None:
        for i in range(n):
            email_jobs.render_alert(alert, prefs[i % 3], "https://watch.example.test")

    def once_per_language() -> None:
        pages = {p: email_jobs.render_alert(alert, p, "https://watch.example.test") for p in prefs}
        for i in range(n):
            page = pages[prefs[i % 3]]
            page.html.replace(email_jobs.TOKEN_PLACEHOLDER, f"token{i}")
            page.text.replace(email_jobs.TOKEN_PLACEHOLDER, f"token{i}")

    _, slow = timed(per_recipient)
    _, fast = timed(once_per_language)
    print(
        f"render {n} mails: per recipient {slow:.2f} s (baseline), once per language + "
        f"token substitution {fast:.3f} s — {slow / fast:.0f}× faster"
    )


def bench_smtp(settings: Settings, smtp: SmtpServer, n: int) -> None:
    alert = raise_alert_record()
    page = email_jobs.render_alert(alert, "en", settings.web.public_url)

    def messages() -> list[Any]:
        return [
            email_jobs.compose(
                settings=settings,
                recipient=f"u{i}@example.test",
                subject=page.subject,
                text=page.text,
                html=page.html,
                message_key=str(i),
            )
            for i in range(n)
        ]

    async def send(concurrency: int) -> float:
        mailer = SmtpMailer(dataclasses.replace(settings.smtp, concurrency=concurrency))
        batch = messages()
        start = time.perf_counter()
        results = await asyncio.gather(*(mailer.send(m) for m in batch))
        await mailer.close()
        assert all(r.ok for r in results)
        return time.perf_counter() - start

    one = asyncio.run(send(1))
    pool = asyncio.run(send(settings.smtp.concurrency))
    smtp.recorder.delay = 0.01  # a server taking 10 ms per message, as real ones do
    one_slow = asyncio.run(send(1))
    pool_slow = asyncio.run(send(settings.smtp.concurrency))
    smtp.recorder.delay = 0.0
    print(
        f"smtp {n} mails: 1 connection {n / one:,.0f}/s (baseline), pool of "
        f"{settings.smtp.concurrency} {n / pool:,.0f}/s ({one / pool:.1f}×); with a 10 ms server: "
        f"{n / one_slow:,.0f}/s vs {n / pool_slow:,.0f}/s ({one_slow / pool_slow:.1f}×)"
    )


def raise_alert_record() -> dict[str, Any]:
    from sorawatch.testing.alerts import alert_record

    return alert_record()


def bench_webhooks(log: EventLog, settings: Settings, rx: HttpReceiver, n: int) -> None:
    ids = []
    for i in range(n):
        hook, _ = endpoints.register(log, rx.url(f"/h{i}"), allow_private=True)
        rx.script(f"/h{i}", [(200, {}, 0.05)])  # each endpoint takes 50 ms
        ids.append(hook.id)
    raise_alert(log, alert_id="al_hooks_1")
    raise_alert(log, alert_id="al_hooks_2")

    def run(alert_id: str, concurrency: int) -> float:
        s = dataclasses.replace(
            settings, webhooks=dataclasses.replace(settings.webhooks, concurrency=concurrency)
        )
        start = time.perf_counter()
        asyncio.run(webhook_jobs.send_batch(log, s, alert_id, ids))
        return time.perf_counter() - start

    serial = run("al_hooks_1", 1)
    concurrent = run("al_hooks_2", settings.webhooks.concurrency)
    print(
        f"webhooks {n} endpoints at 50 ms each: one at a time {serial:.2f} s (baseline), "
        f"{settings.webhooks.concurrency} at once {concurrent:.2f} s ({serial / concurrent:.1f}×)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--mails", type=int, default=500)
    parser.add_argument("--hooks", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp) / "redis").start()
        try:
            with SmtpServer() as smtp, HttpReceiver() as rx:
                settings = dataclasses.replace(
                    Settings(),
                    data=DataSettings(dir=str(Path(tmp) / "data")),
                    smtp=SmtpSettings(
                        host="127.0.0.1",
                        port=smtp.port,
                        concurrency=4,
                        from_="Bench <bench@watch.example.test>",
                    ),
                    web=WebSettings(base_url="https://watch.example.test", secret="bench"),
                    webhooks=WebhookSettings(allow_private=True, concurrency=16),
                ).with_redis_url(server.url)
                redis = Redis.from_url(server.url)
                runtime.configure(settings, redis)
                log = EventLog(redis, Keys(settings.redis.prefix))
                subscribers.count(redis, log.keys)  # imports the projections
                bench_fanout(log, settings, args.subscribers)
                bench_render(raise_alert_record(), args.mails)
                bench_smtp(settings, smtp, args.mails)
                bench_webhooks(log, settings, rx, args.hooks)
        finally:
            server.stop()


if __name__ == "__main__":
    main()

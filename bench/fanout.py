"""Fan-out bench: one alert to N email subscribers and M webhooks, by W worker processes.

    python bench/fanout.py [--n 10000] [--m 1000] [--w 2] [--quick]

Everything runs on 127.0.0.1: a redis-server of its own, Postfix's smtp-sink (C) as the
mail server and nginx (C) as the webhook receiver (see ``common.py``; both unpacked from
Debian packages into ``bench/.cache/``). Subscribers: half Arabic, a quarter English, a
quarter both. Each channel is measured on its own (W workers on the ``email`` queue, then
W on ``webhook``), as the real job functions running in RQ SimpleWorkers.

Printed, each measured in this run:
- sink ceilings: a minimal pipelining client over raw sockets, W processes (what the
  sinks take; they must outpace everything else);
- raw capacity: bare aiosmtplib / httpx clients blasting pre-rendered messages with the
  same concurrency as the workers (W processes × ``smtp.concurrency`` connections,
  × ``webhooks.concurrency`` requests), no queue, no rendering, no ledger;
- naive baseline: one RQ job per recipient through the same job functions, so a new
  SMTP connection per message, a new HTTP client per webhook, rendering per recipient
  (on a sample: ``--naive``);
- the real path: ``fan_out_alert`` then the batch jobs; deliveries/s per channel, their
  ratio to the naive baseline (target ≥ 20×) and to the raw capacity (target ≥ 60 %);
  each worker's RSS after its first job and its peak (flat: no growth with N).
Asserts nothing; exits 1 only when a delivery went missing.
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

from common import HttpSink, SmtpSink, WorkerPool, machine, ratio, redis_server
from redis import Redis

from sorawatch.events import EventLog
from sorawatch.keys import Keys
from sorawatch.projections import alerts, ledger, webhooks
from sorawatch.projections._common import dumps
from sorawatch.settings import (
    DataSettings,
    Settings,
    SmtpSettings,
    WebhookSettings,
    WebSettings,
    WorkerSettings,
)
from tests.workers.delivery_helpers import raise_alert
from workers import fanout
from workers.retry import enqueue_delivery

LANGS = ("ar", "ar", "en", "both")  # half Arabic, a quarter English, a quarter both


def make_settings(redis_url: str, tmp: Path, smtp_port: int, args: argparse.Namespace) -> Settings:
    return dataclasses.replace(
        Settings(),
        data=DataSettings(dir=str(tmp / "data")),
        smtp=SmtpSettings(
            host="127.0.0.1",
            port=smtp_port,
            concurrency=args.smtp_concurrency,
            from_="Sorawatch <alerts@watch.example.test>",
        ),
        web=WebSettings(base_url="https://watch.example.test", secret="bench-secret"),
        webhooks=WebhookSettings(allow_private=True, concurrency=args.hook_concurrency),
        workers=WorkerSettings(batch_size=args.batch),
    ).with_redis_url(redis_url)


# -- seeding ------------------------------------------------------------------------


def seed_subscribers(redis: Redis, keys: Keys, n: int) -> None:
    """N confirmed subscribers wanting every topic, written straight into the projection
    (the same records ``subscribers._store`` writes): the bench is about delivery."""
    ns = keys.projection("subscribers")
    with redis.pipeline(transaction=False) as pipe:
        for i in range(n):
            email = f"user{i:06d}@example.test"
            record = {
                "email": email, "lang": LANGS[i % 4], "topics": ["status", "pricing", "partnership"],
                "kinds": ["change", "news"], "status": "confirmed",
                "requested_at": "2025-01-01T00:00:00Z", "confirmed_at": "2025-01-01T00:00:00Z",
            }  # fmt: skip
            pipe.set(f"{ns}:s:{email}", dumps(record))
            pipe.zadd(f"{ns}:all", {email: 0})
            pipe.zadd(f"{ns}:status:confirmed", {email: 0})
            for topic in ("status", "pricing", "partnership"):
                for kind in ("change", "news"):
                    pipe.zadd(f"{ns}:want:{topic}:{kind}", {email: 0})
            if i % 2000 == 1999:
                pipe.execute()
        pipe.execute()


def seed_webhooks(log: EventLog, rx: HttpSink, m: int) -> list[str]:
    return [webhooks.register(log, rx.url(f"/h/{i}"), allow_private=True)[0].id for i in range(m)]


# -- raw capacity and sink ceilings (spawned children) -------------------------------


async def _raw_smtp(port: int, messages: list[tuple[str, bytes]], concurrency: int) -> int:
    import aiosmtplib

    todo = list(messages)

    async def lane() -> int:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
        await client.connect()
        sent = 0
        while todo:
            rcpt, raw = todo.pop()
            await client.sendmail("alerts@watch.example.test", [rcpt], raw)
            sent += 1
        await client.quit()
        return sent

    return sum(await asyncio.gather(*(lane() for _ in range(concurrency))))


async def _raw_http(urls: list[str], body: bytes, headers: dict[str, str], conc: int) -> int:
    import httpx

    limit = asyncio.Semaphore(conc)
    limits = httpx.Limits(max_connections=conc)
    async with httpx.AsyncClient(limits=limits, trust_env=False) as client:

        async def one(url: str) -> int:
            async with limit:
                r = await client.post(url, content=body, headers=headers)
                return int(r.status_code == 200)

        return sum(await asyncio.gather(*(one(u) for u in urls)))


async def _ceiling_smtp(port: int, n: int, lanes: int) -> int:
    """A minimal SMTP client over raw sockets, pipelining whole transactions."""
    body = b"Subject: x\r\n\r\nhello\r\n.\r\n"
    txn = b"MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n" + body

    async def lane(count: int) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reader.readline()
        writer.write(b"EHLO bench\r\n")
        await writer.drain()
        while not (await reader.readline()).startswith(b"250 "):
            pass
        done, window = 0, 50
        while done < count:
            k = min(window, count - done)
            writer.write(txn * k)
            await writer.drain()
            for _ in range(4 * k):  # MAIL, RCPT, DATA (354), end of data
                await reader.readline()
            done += k
        writer.write(b"QUIT\r\n")
        await writer.drain()
        writer.close()
        return done

    return sum(await asyncio.gather(*(lane(n // lanes) for _ in range(lanes))))


async def _ceiling_http(port: int, n: int, lanes: int) -> int:
    """A minimal keep-alive HTTP/1.1 client over raw sockets, pipelining POSTs."""
    req = (
        f"POST /h/0 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        "Content-Length: 2\r\n\r\n{}"
    ).encode()

    async def lane(count: int) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        done, window = 0, 50
        while done < count:
            k = min(window, count - done)
            writer.write(req * k)
            await writer.drain()
            for _ in range(k):
                await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(2)
            done += k
        writer.close()
        return done

    return sum(await asyncio.gather(*(lane(n // lanes) for _ in range(lanes))))


def _child(kind: str, payload: Any, go: Any, results: Any) -> None:
    results.put("ready")
    go.wait()
    started = time.perf_counter()
    coro = {
        "raw_smtp": _raw_smtp,
        "raw_http": _raw_http,
        "ceiling_smtp": _ceiling_smtp,
        "ceiling_http": _ceiling_http,
    }[kind](*payload)
    done = asyncio.run(coro)
    results.put((done, time.perf_counter() - started))


def in_processes(kind: str, payloads: list[Any]) -> float:
    """Run ``kind`` in one spawned process per payload, all started together; returns
    items per second over the whole (the slowest process ends the clock)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    go, results = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_child, args=(kind, p, go, results)) for p in payloads]
    for p in procs:
        p.start()
    for _ in procs:
        results.get(timeout=60)
    go.set()
    outs = [results.get(timeout=3600) for _ in procs]
    for p in procs:
        p.join(30)
    return sum(d for d, _ in outs) / max(s for _, s in outs)


def split(items: list[Any], parts: int) -> list[list[Any]]:
    return [items[i::parts] for i in range(parts)]


# -- the measured paths -----------------------------------------------------------------


def prerendered_mail(settings: Settings, alert: dict[str, Any], n: int) -> list[tuple[str, bytes]]:
    from workers import email as email_jobs

    pages = {p: email_jobs.render_alert(alert, p, settings.web.public_url) for p in ("ar", "en")}
    out = []
    for i in range(n):
        rcpt = f"raw{i:06d}@example.test"
        page = pages["ar" if i % 2 else "en"]
        msg = email_jobs.compose(
            settings=settings, recipient=rcpt, subject=page.subject, text=page.text,
            html=page.html, message_key=rcpt, unsubscribe="https://watch.example.test/u/x",
        )  # fmt: skip
        out.append((rcpt, msg.as_bytes()))
    return out


def prerendered_hook(alert: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    from datetime import UTC, datetime

    from workers import webhook as hook_jobs

    body = json.dumps(hook_jobs.payload(alert), ensure_ascii=False, separators=(",", ":"))
    headers = hook_jobs.sign("whsec_" + "A" * 32, "msg_raw", body, datetime.now(UTC))
    headers["content-type"] = "application/json"
    return body.encode(), headers


def enqueue_naive(log: EventLog, settings: Settings, alert_id: str, channel: str,
                  recipients: list[str]) -> None:  # fmt: skip
    """One job per recipient through the real job function (a batch of one)."""
    func = fanout.FUNCS[channel]
    with log.redis.pipeline(transaction=False) as pipe:
        for i, r in enumerate(recipients):
            jid = f"naive-{channel}-{alert_id}-{i}"
            enqueue_delivery(log.redis, settings, channel, func, (alert_id, [r], 0), jid,
                             pipeline=pipe)  # fmt: skip
            if i % 500 == 499:
                pipe.execute()
        pipe.execute()


def run_channel(
    settings: Settings, channel: str, workers: int
) -> tuple[float, list[dict[str, Any]]]:
    return WorkerPool(settings, [channel], workers).run()


def sent(redis: Redis, keys: Keys, alert_id: str, channel: str) -> int:
    return int(redis.hlen(ledger.sent_key(keys, alert_id, channel)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="email subscribers")
    parser.add_argument("--m", type=int, default=1_000, help="webhooks")
    parser.add_argument("--w", type=int, default=2, help="worker processes")
    parser.add_argument("--naive", type=int, default=1_000, help="naive sample (emails; /5 hooks)")
    parser.add_argument("--batch", type=int, default=WorkerSettings().batch_size)
    parser.add_argument("--smtp-concurrency", type=int, default=SmtpSettings().concurrency)
    parser.add_argument("--hook-concurrency", type=int, default=WebhookSettings().concurrency)
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--quick", action="store_true", help="N=1000, M=100, naive 200")
    args = parser.parse_args()
    if args.quick:
        args.n, args.m, args.naive = 1000, 100, 200
    print(f"fanout bench: N={args.n} subscribers, M={args.m} webhooks, W={args.w} workers; "
          f"batch {args.batch}, smtp concurrency {args.smtp_concurrency}, webhook concurrency "
          f"{args.hook_concurrency}\n  {machine()}")  # fmt: skip
    w = args.w
    with tempfile.TemporaryDirectory(prefix="sw-bench-") as tmpdir:
        tmp = Path(tmpdir)
        with redis_server(tmp / "redis") as server, SmtpSink(tmp / "smtp") as sink, \
                HttpSink(tmp / "nginx") as rx:  # fmt: skip
            settings = make_settings(server.url, tmp, sink.port, args)
            redis = Redis.from_url(server.url)
            log = EventLog(redis, Keys(settings.redis.prefix))
            keys = log.keys
            t = time.perf_counter()
            seed_subscribers(redis, keys, args.n)
            hook_ids = seed_webhooks(log, rx, args.m)
            print(f"  seeded in {time.perf_counter() - t:.1f} s")
            alert, _ = raise_alert(log, alert_id="al_bench")
            conc_s, conc_h = args.smtp_concurrency, args.hook_concurrency

            # 1. What the sinks take (they must not be the bottleneck).
            ceil_smtp = in_processes("ceiling_smtp", [(sink.port, 20_000 // w, 4)] * w)
            ceil_http = in_processes("ceiling_http", [(rx.port, 40_000 // w, 4)] * w)
            print(f"  sink ceilings: smtp-sink {ceil_smtp:,.0f} msg/s, nginx {ceil_http:,.0f} req/s"
                  " (raw-socket pipelining clients)")  # fmt: skip

            # 2. Raw capacity: bare clients, same concurrency, pre-rendered.
            raw_n = min(args.n, 4000)
            mails = prerendered_mail(settings, alert, raw_n)
            raw_smtp = in_processes(
                "raw_smtp", [(sink.port, part, conc_s) for part in split(mails, w)]
            )
            body, headers = prerendered_hook(alert)
            urls = [rx.url(f"/h/{i}") for i in range(max(args.m, 2000))]
            raw_http = in_processes(
                "raw_http", [(part, body, headers, conc_h) for part in split(urls, w)]
            )
            print(f"  raw capacity: aiosmtplib {raw_smtp:,.0f} msg/s, httpx {raw_http:,.0f} req/s")

            # 3. Naive baseline on a sample.
            naive_email = naive_hook = float("nan")
            if not args.skip_naive:
                raise_alert(log, alert_id="al_naive")
                ne = min(args.n, args.naive)
                nh = min(args.m, max(args.naive // 5, 1))
                emails = [f"user{i:06d}@example.test" for i in range(ne)]
                enqueue_naive(log, settings, "al_naive", "email", emails)
                secs, _ = run_channel(settings, "email", w)
                naive_email = sent(redis, keys, "al_naive", "email") / secs
                enqueue_naive(log, settings, "al_naive", "webhook", hook_ids[:nh])
                secs, _ = run_channel(settings, "webhook", w)
                naive_hook = sent(redis, keys, "al_naive", "webhook") / secs
                print(f"  naive (job per recipient): email {naive_email:,.1f}/s over {ne}, "
                      f"webhook {naive_hook:,.1f}/s over {nh}")  # fmt: skip

            # 4. The real path.
            before_mail, before_http = sink.count(), rx.count()
            t = time.perf_counter()
            counts = fanout.fan_out_alert(log, alert, settings)
            fan_secs = time.perf_counter() - t
            email_secs, email_stats = run_channel(settings, "email", w)
            hook_secs, hook_stats = run_channel(settings, "webhook", w)
            got_email, got_hook = (
                sent(redis, keys, "al_bench", "email"),
                sent(redis, keys, "al_bench", "webhook"),
            )
            rx.settle()
            arrived_mail, arrived_http = sink.count() - before_mail, rx.count() - before_http
            email_rate, hook_rate = got_email / email_secs, got_hook / hook_secs
            print(f"  fan-out: {counts['email']} + {counts['webhook']} recipients planned and "
                  f"enqueued in {fan_secs:.2f} s")  # fmt: skip
            print(f"  email:   {got_email} sent in {email_secs:.2f} s = {email_rate:,.0f}/s "
                  f"(sink got {arrived_mail}); vs naive {ratio(email_rate, naive_email)} "
                  f"(target ≥ 20x), vs raw {email_rate / raw_smtp:.0%} (target ≥ 60%)")  # fmt: skip
            print(f"  webhook: {got_hook} sent in {hook_secs:.2f} s = {hook_rate:,.0f}/s "
                  f"(receiver got {arrived_http}); vs naive {ratio(hook_rate, naive_hook)}, "
                  f"vs raw {hook_rate / raw_http:.0%}")  # fmt: skip
            for name, stats in (("email", email_stats), ("webhook", hook_stats)):
                mem = ", ".join(f"{s['jobs']} jobs: {s['first_rss_kb'] / 1024:.0f} MB after the "
                                f"first, peak {s['peak_kb'] / 1024:.0f} MB" for s in stats)  # fmt: skip
                print(f"  {name} workers: {mem}")
            ledger_counts = ledger.counts(redis, keys, "al_bench", "email")
            print(f"  ledger: email {ledger_counts}, events in log {log.count()}")
            print("RESULT " + json.dumps({
                "n": args.n, "m": args.m, "w": w, "email_per_s": round(email_rate),
                "webhook_per_s": round(hook_rate), "naive_email_per_s": round(naive_email, 1),
                "naive_webhook_per_s": round(naive_hook, 1), "raw_smtp_per_s": round(raw_smtp),
                "raw_http_per_s": round(raw_http), "ceiling_smtp": round(ceil_smtp),
                "ceiling_http": round(ceil_http),
                "peak_worker_mb": round(max(s["peak_kb"] for s in email_stats + hook_stats) / 1024),
                "fanout_s": round(fan_secs, 2),
            }))  # fmt: skip
            ok = got_email == counts["email"] == args.n and got_hook == args.m
            assert alerts.get(redis, keys, "al_bench") is not None
            return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

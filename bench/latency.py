"""Latency bench: changes published one by one, from the poll that sees one to delivery.

    python bench/latency.py [--changes 200] [--quick]

A feed (a static file served by nginx) gets one new Sora item at a time, each asserting
a different fact (a new price), so each raises its own alert. This process polls the
feed with the watcher's Poller right after each publish; real ``sorawatch work``
processes (changes, email, webhook) run alongside. One confirmed subscriber (mail to
an aiosmtpd server, where each arrival is timed) and one webhook (nginx, which logs
the arrival time and the ``webhook-id``). The clock starts when the poll that first
sees the change starts. Prints p50, p95, p99 of poll → webhook received and poll →
mail received (target: p99 < 1 s to the webhook). Asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

from common import REPO, HttpSink, machine, redis_server
from redis import Redis

from sorawatch import schedule
from sorawatch.commands import endpoints, subscriptions
from sorawatch.events import EventLog
from sorawatch.keys import Keys
from sorawatch.settings import DataSettings, FeedSettings, Settings
from sorawatch.testing.smtp import SmtpServer
from sorawatch.watcher.classify import default_classifier
from sorawatch.watcher.fetch import make_client
from sorawatch.watcher.poll import Poller

FILLER = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
]


def feed(items: list[tuple[str, str, str]]) -> bytes:
    now = format_datetime(datetime.now(UTC))
    body = "".join(
        f"<item><title>{escape(t)}</title><link>{u}</link><guid>{u}</guid>"
        f"<description>{escape(d)}</description><pubDate>{now}</pubDate></item>"
        for t, u, d in reversed(items[-20:])  # newest first, as feeds list them
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Wire</title>'
        f"<link>https://wire.example.test/</link><description>x</description>{body}"
        "</channel></rss>"
    ).encode()


def story(i: int) -> tuple[str, str, str]:
    """A distinct pricing change: a new Pro price each time, worded differently."""
    # Enough words of its own that no two changes read as one story (near-duplicate text).
    words = " ".join(FILLER[(i * 7 + k) % len(FILLER)] + str(i) for k in range(12))
    price = 100 + i
    return (
        f"Sora Pro plan now costs ${price} a month ({words})",
        f"https://wire.example.test/pro-{i}",
        f"OpenAI prices its Sora video model Pro plan at ${price} per month. {words}",
    )


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def config(path: Path, settings: Settings, smtp_port: int) -> Path:
    path.write_text(
        f'[redis]\nurl = "{settings.redis.url}"\n\n[smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\n'
        'from = "Sorawatch <alerts@watch.example.test>"\n\n[web]\n'
        'base_url = "https://watch.example.test"\nsecret = "bench-secret-bench-secret-bench-secret"\n\n'
        f'[webhooks]\nallow_private = true\n\n[data]\ndir = "{settings.data.dir}"\n'
    )
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="20 changes")
    args = parser.parse_args()
    n = 20 if args.quick else args.changes
    print(f"latency bench: {n} changes, one at a time\n  {machine()}")
    with tempfile.TemporaryDirectory(prefix="sw-latency-") as tmpdir:
        tmp = Path(tmpdir)
        site = tmp / "site"
        site.mkdir()
        for folder in (tmp, site):
            folder.chmod(0o755)  # nginx's workers run as nobody
        items: list[tuple[str, str, str]] = [
            ("Weather: sunny week ahead", "https://wire.example.test/weather", "Sun all week.")
        ]
        (site / "wire.xml").write_bytes(feed(items))
        with redis_server(tmp / "redis") as server, HttpSink(tmp / "rx") as rx, \
                HttpSink(tmp / "web", serve=site) as web, SmtpServer() as smtp:  # fmt: skip
            url = web.url("/wire.xml")
            settings = dataclasses.replace(
                Settings(), data=DataSettings(dir=str(tmp / "data")),
                feeds=(FeedSettings(url=url, name="Wire", trust="official"),),
            ).with_redis_url(server.url)  # fmt: skip
            redis = Redis.from_url(server.url)
            keys = Keys(settings.redis.prefix)
            log = EventLog(redis, keys)
            subscriptions.request(
                log,
                "reader@example.test",
                "both",
                None,
                confirmed=True,
                timing=schedule.choose(max_per_day=0),
            )  # every change, at once
            endpoints.register(log, rx.url("/hook"), allow_private=True)
            cfg = config(tmp / "sorawatch.toml", settings, smtp.port)
            env = {**os.environ, "SORAWATCH_CONFIG": str(cfg)}
            with open(tmp / "work.log", "wb") as work_log:
                work = subprocess.Popen(
                    [sys.executable, "-m", "sorawatch.cli", "work"], cwd=REPO, env=env,
                    stdout=subprocess.DEVNULL, stderr=work_log,
                )  # fmt: skip
            poller = Poller(settings, redis, keys, make_client(settings.watcher),
                            default_classifier())  # fmt: skip
            try:
                poller.poll(settings.feeds[0], force=True)  # the baseline poll: no alert
                time.sleep(3)  # the workers' start-up
                to_hook: list[float] = []
                to_mail: list[float] = []
                missed = 0
                for i in range(n):
                    items.append(story(i))
                    wire = site / "wire.xml"
                    wire.write_bytes(feed(items))
                    # Last-Modified has whole seconds: two changes in one second would
                    # look unmodified to the conditional GET, so each gets its own second.
                    stamp = time.time() + i + 1
                    os.utime(wire, (stamp, stamp))
                    hooks_before = len(rx.arrivals())
                    mails_before = len(smtp.messages)
                    started = time.time()
                    outcome = poller.poll(settings.feeds[0], force=True)
                    mail_at = hook_at = None
                    deadline = time.time() + 10
                    while time.time() < deadline and (mail_at is None or hook_at is None):
                        if mail_at is None and len(smtp.messages) > mails_before:
                            mail_at = time.time()
                        if hook_at is None:
                            got = rx.arrivals()
                            if len(got) > hooks_before:
                                hook_at = got[-1][0]
                        time.sleep(0.002)
                    if mail_at is None or hook_at is None or outcome.events != 1:
                        missed += 1
                        continue
                    to_hook.append(hook_at - started)
                    to_mail.append(mail_at - started)
            finally:
                work.terminate()
                work.wait(30)
                poller.client.close()
            if not to_hook:
                print(f"  no change was delivered ({missed} missed); see {tmp / 'work.log'}")
                return 1
            for name, values in (("webhook", to_hook), ("mail", to_mail)):
                print(f"  poll -> {name} received: p50 {pct(values, 50) * 1000:.0f} ms, "
                      f"p95 {pct(values, 95) * 1000:.0f} ms, p99 {pct(values, 99) * 1000:.0f} ms "
                      f"(n={len(values)})")  # fmt: skip
            print(f"  missed: {missed} (no alert or not delivered within 10 s)")
            print("RESULT " + json.dumps({
                "changes": n, "missed": missed,
                "hook_p50_ms": round(pct(to_hook, 50) * 1000), "hook_p99_ms": round(pct(to_hook, 99) * 1000),
                "mail_p50_ms": round(pct(to_mail, 50) * 1000), "mail_p99_ms": round(pct(to_mail, 99) * 1000),
            }))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

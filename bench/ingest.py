"""Ingest bench: F feeds of 50 items served on 127.0.0.1, a cold and a warm ``watch --once``.

    python bench/ingest.py [--feeds 500] [--items 50] [--quick]

The feeds are static RSS files served by nginx (ETag and Last-Modified, so the warm
pass is all 304s); one in ten items is Sora news in English or Arabic, the rest other
tech news. A pass is what ``sorawatch watch --once`` runs: the CLI's Poller (shared
httpx client, default classifier, ``watcher.concurrency`` threads) over every feed,
timed in this process (the command's own start-up, ~1 s of imports, is left out).

Printed: feeds/s and items/s of the cold pass (every item new: fetch, parse,
normalise, classify, append) and of the warm pass (target: 500 feeds in < 2 s), events
appended, and the cold item rate against bare ``feedparser.parse`` of the same bytes in
the same process (target ≥ 50 %; its defaults, measured before and after the passes),
and against ``feedparser.parse`` called exactly as the watcher calls it. Asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import tempfile
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import feedparser
from common import HttpSink, machine, redis_server
from redis import Redis

from sorawatch.events import EventLog
from sorawatch.keys import Keys
from sorawatch.settings import DataSettings, FeedSettings, Settings, WatcherSettings
from sorawatch.watcher.classify import default_classifier
from sorawatch.watcher.fetch import fetch, make_client
from sorawatch.watcher.poll import Poller

SORA = [
    ("OpenAI releases Sora video model to everyone in {c}", "Sora is now generally available."),
    ("Sora Pro plan costs ${p} a month", "OpenAI prices its Sora video model Pro plan."),
    ("OpenAI partners with Studio {c} on Sora", "The studio will use the OpenAI Sora model."),
    ("أوبن إيه آي تطلق نموذج سورا للفيديو في {c}", "أصبح سورا متاحا للجميع."),
]
OTHER = [
    ("New phone from {c} has a bigger battery", "Reviewers liked the screen and the camera."),
    ("Cloud outage hits {c} customers for an hour", "Services were restored by evening."),
    ("Chip maker {c} posts record quarter", "Demand for data centre parts kept rising."),
    ("شركة {c} تعلن عن هاتف جديد", "يأتي الهاتف ببطارية أكبر وشاشة أوضح."),
]


def feed_xml(f: int, items: int) -> bytes:
    now = datetime.now(UTC)
    parts = []
    for i in range(items):
        pool = SORA if i % 10 == 0 else OTHER
        title, text = pool[(f + i) % len(pool)]
        title = title.format(c=f"X{f}-{i}", p=10 + (f * items + i) % 990)
        link = f"https://outlet{f}.example.test/{i}"
        when = format_datetime(now - timedelta(minutes=i))
        parts.append(
            f"<item><title>{escape(title)}</title><link>{link}</link><guid>{link}</guid>"
            f"<description>{escape(text)} {escape(title)}</description>"
            f"<pubDate>{when}</pubDate></item>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Outlet {f}</title><link>https://outlet{f}.example.test/</link>"
        f"<description>news</description>{''.join(parts)}</channel></rss>"
    ).encode()


def bare_feedparser(bodies: list[bytes], seconds: float = 3.0, **options: Any) -> float:
    """Items per second of ``feedparser.parse`` alone over the same bytes: with its
    defaults (sanitize, resolve relative URIs), or with ``options`` instead."""
    options = options or {"sanitize_html": True, "resolve_relative_uris": True}
    items, i, started = 0, 0, time.perf_counter()
    while time.perf_counter() - started < seconds or i == 0:
        result = feedparser.parse(io.BytesIO(bodies[i % len(bodies)]), **options)
        items += len(result.entries)
        i += 1
    return items / (time.perf_counter() - started)


def watcher_feedparser(bodies: list[bytes], headers: dict[str, str], seconds: float = 3.0) -> float:
    """``bare_feedparser`` called as ``sorawatch.watcher.parse`` calls it (its options, the headers
    ``sorawatch.watcher.fetch`` hands on, Content-Location included): the stricter baseline."""
    return bare_feedparser(
        bodies, seconds, response_headers=headers, sanitize_html=True, resolve_relative_uris=False
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=500)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="50 feeds")
    args = parser.parse_args()
    if args.quick:
        args.feeds = 50
    print(f"ingest bench: {args.feeds} feeds x {args.items} items\n  {machine()}")
    with tempfile.TemporaryDirectory(prefix="sw-ingest-") as tmpdir:
        tmp = Path(tmpdir)
        site = tmp / "site"
        site.mkdir()
        for folder in (tmp, site):
            folder.chmod(0o755)  # nginx's workers run as nobody
        bodies = []
        for f in range(args.feeds):
            body = feed_xml(f, args.items)
            (site / f"f{f}.xml").write_bytes(body)
            bodies.append(body)
        with redis_server(tmp / "redis") as server, HttpSink(tmp / "nginx", serve=site) as web:
            feeds = tuple(
                FeedSettings(url=web.url(f"/f{f}.xml"), name=f"Outlet {f}")
                for f in range(args.feeds)
            )
            settings = dataclasses.replace(
                Settings(), data=DataSettings(dir=str(tmp / "data")), feeds=feeds,
                watcher=WatcherSettings(),
            ).with_redis_url(server.url)  # fmt: skip
            redis = Redis.from_url(server.url)
            keys = Keys(settings.redis.prefix)
            classifier = default_classifier()
            client = make_client(settings.watcher)
            poller = Poller(settings, redis, keys, client, classifier)
            # The machine is shared: the baseline is measured before and after the passes,
            # and the cold pass compared with the mean of the two.
            bare_before = bare_feedparser(bodies)
            passes = {}
            for name in ("cold", "warm"):
                summary = poller.run_pass(feeds, force=True)
                passes[name] = summary
                ok = summary.count("ok") + summary.count("not_modified")
                print(f"  {name}: {summary.line()}\n        {len(feeds) / summary.seconds:,.0f} "
                      f"feeds/s, {summary.items / summary.seconds:,.0f} items/s ({ok} ok)")  # fmt: skip
            headers = fetch(client, feeds[0].url, settings.watcher).headers
            client.close()
            bare_after = bare_feedparser(bodies)
            bare = (bare_before + bare_after) / 2
            same = watcher_feedparser(bodies, headers)
            cold = passes["cold"]
            cold_rate = cold.items / cold.seconds
            events = EventLog(redis, keys).count()
            print(f"  events appended: {cold.events} (log holds {events})")
            print(f"  bare feedparser.parse: {bare:,.0f} items/s (before {bare_before:,.0f}, after "
                  f"{bare_after:,.0f}); cold pass item rate is {cold_rate / bare:.0%} of it "
                  "(target ≥ 50%)")  # fmt: skip
            print(f"  feedparser.parse as the watcher calls it: {same:,.0f} items/s; cold pass "
                  f"is {cold_rate / same:.0%} of it")  # fmt: skip
            print(f"  warm pass: {passes['warm'].seconds:.2f} s for {len(feeds)} feeds "
                  "(target < 2 s for 500)")  # fmt: skip
            print("RESULT " + json.dumps({
                "feeds": len(feeds), "cold_s": round(cold.seconds, 2),
                "warm_s": round(passes["warm"].seconds, 2), "cold_items_per_s": round(cold_rate),
                "bare_items_per_s": round(bare), "ratio": round(cold_rate / bare, 3),
                "bare_before": round(bare_before), "bare_after": round(bare_after),
                "watcher_feedparser_items_per_s": round(same),
                "ratio_vs_watcher_feedparser": round(cold_rate / same, 3),
                "events": cold.events,
            }))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

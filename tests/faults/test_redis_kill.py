"""Fault 2: the test's own redis-server SIGKILLed during ingest and during delivery,
then restarted on the same data (append-only, ``everysec`` and ``always``).

A long-running ``sorawatch watch`` and ``sorawatch work`` are never restarted by
hand: they reconnect with backoff. With ``everysec`` up to a second of writes may
be gone after the restart; the watcher's next poll re-appends what was lost
(idempotent ids: no doubles). Then: no duplicate in the log, every relevant item
in it, ``replay`` rebuilds exactly the live projections, and every subscriber got
every alert (by Message-ID); duplicates, if any, only from the lost window.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from redis import Redis

from sorawatch.commands import subscriptions
from sorawatch.events import Event, EventLog
from sorawatch.keys import Keys, digest
from sorawatch.projections import alerts, ledger
from sorawatch.testing.feeds import FeedServer, Route
from sorawatch.testing.redis import RedisServer
from sorawatch.testing.smtp import SmtpServer
from tests.faults.news import STORIES, WEATHER, feeds_toml, rss
from tests.faults.procs import Proc, wait_for, write_config
from tests.reliability import Figures
from tests.sorawatch.test_replay import dump

pytestmark = [pytest.mark.fault, pytest.mark.slow]

PREFIX = "rk"
N_SUBS = 30
PATHS = {"a": "/a.xml", "b": "/b.xml", "c": "/c.xml"}


def _events(redis: Redis, keys: Keys) -> list[tuple[str, Event]]:
    return [(e.id, e) for _sid, e in EventLog(redis, keys).read()]


def _due(redis: Redis, keys: Keys) -> list[str]:
    """Alerts due by mail (a story's typed change messages go to webhooks only)."""
    return [
        a["alert_id"]
        for a in alerts.recent(redis, keys, limit=1000)
        if not a.get("baseline") and "email" in (a.get("want") or {"email": a.get("kind")})
    ]


def _undecided(redis: Redis, keys: Keys) -> list[str]:
    """Item events in the log that no change decision (story started or merged) names."""
    events = _events(redis, keys)
    decided = {e.data.get("item_event") for _i, e in events if e.type.startswith("story.")}
    return [i for i, e in events if e.type in ("item.seen", "item.revised") and i not in decided]


def _lost(
    redis: Redis,
    keys: Keys,
    due: list[str],
    emails: list[str],
    arrived: Counter[str],
    events: list[tuple[str, Event]],
) -> str:
    """What a failure needs to be read: per due alert, how many of its mails arrived,
    what the ledger says, and the log's events that name it."""
    lines = []
    for alert_id in due:
        got = sum(1 for e in emails if digest(f"{alert_id}\x1f{e}", 32) in arrived)
        lines.append(
            f"{alert_id}: {got}/{len(emails)} arrived; ledger {ledger.counts(redis, keys, alert_id, 'email')}; "
            f"alert {alerts.get(redis, keys, alert_id)}"
        )
        for event_id, event in events:
            if alert_id in repr(event.data):
                lines.append(f"    {event_id} {event.type} {str(event.data)[:300]}")
    missing = sum(1 for a in due for e in emails if digest(f"{a}\x1f{e}", 32) not in arrived)
    return f"{missing} due deliveries never arrived\n" + "\n".join(lines)


@pytest.mark.parametrize("fsync", ["everysec", "always"])
def test_redis_sigkill_during_ingest_and_delivery(
    fsync: str, tmp_path: Path, reliability: Figures
) -> None:
    server = RedisServer(tmp_path / "redis", appendfsync=fsync).start()
    url = server.url
    keys = Keys(PREFIX)
    procs: list[Proc] = []
    try:
        redis = Redis.from_url(url)
        log = EventLog(redis, keys)
        emails = [f"r{i:03d}@example.test" for i in range(N_SUBS)]
        for address in emails:
            subscriptions.request(log, address, "en", None, None, confirmed=True)
        with FeedServer() as feeds, SmtpServer() as smtp:
            for path in PATHS.values():
                feeds.route(path, Route(body=rss([WEATHER])))
            config = write_config(
                tmp_path / "sorawatch.toml",
                url,
                PREFIX,
                tmp_path / "data",
                f'[smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\n'
                'from = "Sorawatch <alerts@watch.example.test>"\n\n'
                "[workers]\nretry_schedule = [0, 1, 2, 2, 2]\n\n"
                '[log]\nlevel = "WARNING"\n\n'
                + feeds_toml({n: feeds.url(p) for n, p in PATHS.items()}),
            )
            baseline = Proc(config, url, "watch", "--once", log=tmp_path / "baseline.log")
            assert baseline.wait(60) == 0, baseline.output()
            procs += [
                Proc(config, url, "watch", log=tmp_path / "watch.log"),
                Proc(config, url, "work", log=tmp_path / "work.log"),
            ]
            # The news breaks on every outlet at once.
            feeds.route(PATHS["a"], Route(body=rss([STORIES[0], STORIES[1], WEATHER])))
            feeds.route(PATHS["b"], Route(body=rss([STORIES[2], STORIES[3], WEATHER])))
            feeds.route(PATHS["c"], Route(body=rss([STORIES[4], WEATHER])))

            # Kill 1: as soon as the first news item is in the log (ingest, changes running).
            wait_for(
                lambda: any(
                    e.type == "item.seen" and not e.data.get("baseline")
                    for _i, e in _events(redis, keys)
                ),
                60,
                "the first news item",
                poll=0.01,
            )
            server.kill()
            time.sleep(1.0)
            server.start()
            redis = Redis.from_url(url)
            # Kill 2: as soon as the first alert mail arrived (delivery running).
            wait_for(lambda: len(smtp.messages) > 0, 60, "the first mail", poll=0.01)
            server.kill()
            sent_before_kill = len(smtp.messages)
            time.sleep(1.0)
            server.start()
            redis = Redis.from_url(url)

            # Healed: every relevant story in the log, and every alert delivered to all.
            urls = {s[1] for s in STORIES}

            def healed() -> bool:
                seen = {
                    e.data["url"]
                    for _i, e in _events(redis, keys)
                    if e.type in ("item.seen", "item.revised")
                }
                due = _due(redis, keys)
                return (
                    urls <= seen
                    and not _undecided(redis, keys)
                    and bool(due)
                    and all(
                        ledger.counts(redis, keys, a, "email").get("sent") == N_SUBS for a in due
                    )
                )

            try:
                wait_for(healed, 60, "a healed log and every alert delivered", poll=0.2)
            except AssertionError:
                seen = {e.data["url"] for _i, e in _events(redis, keys) if "url" in e.data}
                counts = {a: ledger.counts(redis, keys, a, "email") for a in _due(redis, keys)}
                logs = "\n".join(p.output()[-3000:] for p in procs)
                logs += f"\nundecided {_undecided(redis, keys)}"
                raise AssertionError(
                    f"missing {urls - seen}; deliveries {counts}\n{logs}"
                ) from None
            for proc in procs:
                assert proc.stop() in (0, -15), proc.output()
            messages = [m.message for m in smtp.messages]

        due = _due(redis, keys)
        events = _events(redis, keys)
        ids = [i for i, _e in events]
        assert len(ids) == len(set(ids)), "an event is in the log twice"
        # Every alert to every subscriber, by the Message-ID the sender derives from both.
        arrived = Counter(str(m["Message-ID"]).strip("<>").split("@")[0] for m in messages)
        expected = {digest(f"{a}\x1f{e}", 32) for a in due for e in emails}
        lost = expected - set(arrived)
        assert not lost, _lost(redis, keys, due, emails, arrived, events)
        duplicated = sum(n - 1 for n in arrived.values())
        if fsync == "always":
            assert duplicated == 0
        # Alerts are not doubled: one per distinct fact (a story may raise news and change).
        topics = Counter((a["topic"], a["kind"], str(a.get("after"))) for a in
                         (alerts.get(redis, keys, i) or {} for i in due))  # fmt: skip
        assert all(n == 1 for n in topics.values()), topics

        # Replay rebuilds exactly what the live system built.
        live = dump(redis, keys)
        out = subprocess.run(
            [sys.executable, "-m", "sorawatch.cli", "-c", str(config), "replay"],
            env={"SORAWATCH_REDIS_URL": url, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=300,  # a bound against hanging; a replay takes a second
            check=False,
        )
        assert out.returncode == 0, out.stderr
        assert dump(redis, keys) == live, "replay differs from the live state"
        reliability.fault(
            f"Redis SIGKILL during ingest and delivery (appendfsync {fsync})",
            injected=2,
            expected=len(expected),
            delivered=len(expected - lost),
            lost=len(lost),
            duplicated=duplicated,
            bound=0 if fsync == "always" else f"{sent_before_kill} sent before the kill",
        )
    finally:
        for proc in procs:
            proc.stop()
        server.stop()

"""One clock: `SORAWATCH_NOW` (or `now` in the file) fixes the instant every command decides by."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from redis import Redis

from sorawatch import clock
from sorawatch.errors import SettingsError
from sorawatch.events import EventLog, utcnow
from sorawatch.keys import Keys
from sorawatch.settings import load_settings
from sorawatch.testing.feeds import FeedServer, Route

FIRST = datetime(2024, 2, 1, 8, 0, tzinfo=UTC)
NOW = datetime(2024, 2, 15, 10, 0, tzinfo=UTC)
NOW_TEXT = "2024-02-15T10:00:00Z"
NOW_LOGGED = "2024-02-15T10:00:00.000000Z"  # how the event log writes it


def test_settings_read_the_clock_from_the_environment_and_the_file(tmp_path: Path) -> None:
    assert load_settings(env={}).now is None
    assert load_settings(env={"SORAWATCH_NOW": ""}).now is None
    assert load_settings(env={"SORAWATCH_NOW": NOW_TEXT}).now == NOW
    assert load_settings(env={"SORAWATCH_NOW": "2024-02-15T12:00:00+02:00"}).now == NOW
    path = tmp_path / "s.toml"
    path.write_text('now = "2024-02-15T10:00:00Z"\n[web]\nport = 8001\n', "utf-8")
    assert load_settings(path, env={}).now == NOW
    path.write_text("now = 2024-02-15T10:00:00Z\n", "utf-8")  # a TOML datetime
    assert load_settings(path, env={}).now == NOW
    # the environment wins over the file
    assert load_settings(path, env={"SORAWATCH_NOW": "2025-01-01T00:00:00Z"}).now == datetime(
        2025, 1, 1, tzinfo=UTC
    )


@pytest.mark.hostile
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("yesterday", "SORAWATCH_NOW: expected an ISO 8601 instant"),
        ("2024-02-30T10:00:00Z", "SORAWATCH_NOW: expected an ISO 8601 instant"),
        ("2024-02-15T10:00:00", "SORAWATCH_NOW: '2024-02-15T10:00:00' has no time zone"),
        ("2024-02-15", "SORAWATCH_NOW: '2024-02-15' has no time zone"),
    ],
)
def test_a_bad_clock_names_the_key(value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(env={"SORAWATCH_NOW": value})


@pytest.mark.hostile
def test_a_bad_clock_in_the_file_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text("now = 5\n", "utf-8")
    with pytest.raises(SettingsError, match="now: expected an ISO 8601 instant"):
        load_settings(path, env={})


def test_a_bad_clock_stops_the_command_with_exit_code_2() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SORAWATCH_")}
    env["SORAWATCH_NOW"] = "soon"
    proc = subprocess.run(
        [sys.executable, "-m", "sorawatch.cli", "state"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "bad settings: SORAWATCH_NOW: expected an ISO 8601 instant" in proc.stderr


def test_the_clock_stands_still_when_fixed_and_runs_when_not() -> None:
    try:
        clock.use(NOW)
        assert clock.now() == NOW
        assert utcnow() == NOW_LOGGED
        assert clock.day() == int(NOW.timestamp() // 86400)
        clock.use(None)
        assert abs(clock.now() - datetime.now(UTC)) < timedelta(minutes=5)
    finally:
        clock.use(None)


# -- the real commands under a fixed clock --------------------------------------------------

FRESH = ("OpenAI releases Sora to everyone", "https://a.example.test/released",
         "Sora is now generally available.", NOW - timedelta(hours=2))  # fmt: skip
OLD = ("OpenAI partners with Lionsgate on Sora video model", "https://a.example.test/lionsgate",
       "The studio Lionsgate will use Sora.", NOW - timedelta(days=60))  # fmt: skip
BASE = ("OpenAI signs Sora deal with Pixar", "https://a.example.test/pixar",
        "Pixar studio will use the OpenAI Sora video model.", FIRST - timedelta(days=1))  # fmt: skip


def _rss(items: list[tuple[str, str, str, datetime]]) -> bytes:
    entries = "".join(
        f"<item><title>{escape(t)}</title><link>{escape(u)}</link><guid>{escape(u)}</guid>"
        f"<description>{escape(d)}</description><pubDate>{format_datetime(p)}</pubDate></item>"
        for t, u, d, p in items
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Feed</title>'
        "<link>https://a.example.test/</link><description>x</description>"
        f"<language>en</language>{entries}</channel></rss>"
    ).encode()


def _sorawatch(config: Path, now: str, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SORAWATCH_")}
    env["SORAWATCH_NOW"] = now
    proc = subprocess.run(
        [sys.executable, "-m", "sorawatch.cli", "-c", str(config), *args],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, f"sorawatch {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_watch_and_work_decide_by_the_fixed_clock(
    tmp_path: Path, redis_url: str, redis: Redis
) -> None:
    with FeedServer() as feeds:
        url = feeds.route("/a.xml", Route(body=_rss([BASE])))
        config = tmp_path / "sorawatch.toml"
        config.write_text(
            f'[redis]\nurl = "{redis_url}"\n\n[data]\ndir = "{tmp_path / "data"}"\n\n'
            f'[[feeds]]\nurl = "{url}"\nname = "Outlet A"\nlang = "en"\ntrust = "official"\n',
            "utf-8",
        )
        # The first poll is a baseline; its item is seen at the fixed instant.
        _sorawatch(config, "2024-02-01T08:00:00Z", "watch", "--once")
        feeds.route("/a.xml", Route(body=_rss([FRESH, OLD, BASE])))
        _sorawatch(config, NOW_TEXT, "watch", "--once")
        _sorawatch(config, NOW_TEXT, "work", "--burst")

    events = [e for _, e in EventLog(redis, Keys()).read()]
    seen = {e.data["url"]: e.at for e in events if e.type == "item.seen"}
    assert seen == {
        BASE[1]: "2024-02-01T08:00:00.000000Z",
        FRESH[1]: NOW_LOGGED,
        OLD[1]: NOW_LOGGED,
    }
    alerts = [e for e in events if e.type == "alert.raised"]
    alerted = {s["url"] for a in alerts for s in a.data["sources"]}
    # Published the same day: news. Published 60 days before the fixed now
    # (workers.max_age_days is 30): evidence, no alert.
    assert FRESH[1] in alerted
    assert OLD[1] not in alerted
    assert BASE[1] not in alerted
    assert {a.at for a in alerts} == {NOW_LOGGED}
    assert {a.data["raised_at"] for a in alerts} == {NOW_LOGGED}

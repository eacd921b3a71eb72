"""`sorawatch watch --once` and `sorawatch feeds` as real processes: exit codes, output, races."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from redis import Redis

from sorawatch.events import EventLog
from sorawatch.keys import Keys
from sorawatch.testing.feeds import FeedServer, Route
from sorawatch.testing.ports import free_port
from tests.watcher.recorded import recorded

FEEDS = {
    "rss2_en.xml": ("OpenAI News", "en"),
    "rss2_ar.xml": ("البوابة العربية", "ar"),
    "gnews_en.xml": ("Google News: Sora (English)", "en"),
    "gnews_ar.xml": ("Google News: سورا", "ar"),
    "atom_en.xml": ("The Verge: AI", None),
    "atom_ar.xml": ("عالم التقنية", None),
    "rdf_en.xml": ("Tech RDF", None),
    "jsonfeed_en.json": ("AI Video Weekly", None),
    "jsonfeed_ar.json": ("نشرة الفيديو", None),
}


def write_config(path: Path, server: FeedServer, *, delay: float = 0.0, extra: str = "") -> Path:
    lines = ["[watcher]", "read_timeout = 2.0", "connect_timeout = 2.0", "jitter = 0.0", extra, ""]
    for name, (title, lang) in FEEDS.items():
        ctype = "application/feed+json" if name.endswith(".json") else "application/xml"
        url = server.route(f"/{name}", Route(recorded(name), content_type=ctype, delay=delay))
        lines += ["[[feeds]]", f"url = {json.dumps(url)}", f"name = {json.dumps(title)}"]
        if lang:
            lines.append(f'lang = "{lang}"')
        lines.append("")
    path.write_text("\n".join(lines), "utf-8")
    return path


def env_for(config: Path, redis_url: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SORAWATCH_")}
    env.update(
        SORAWATCH_CONFIG=str(config),
        SORAWATCH_REDIS_URL=redis_url,
        SORAWATCH_DATA_DIR=str(tmp_path / "data"),
    )
    return env


def sorawatch(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sorawatch.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_watch_once_then_feeds(
    tmp_path: Path, feed_server: FeedServer, redis_url: str, redis: Redis
) -> None:
    env = env_for(write_config(tmp_path / "c.toml", feed_server), redis_url, tmp_path)
    done = sorawatch("watch", "--once", env=env)
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip().splitlines()[-1]
    assert line.startswith("watch --once: feeds=9 ok=9")
    assert "failed=0" in line
    events = [e for _, e in EventLog(redis, Keys()).read()]
    assert events
    assert f"events={len(events)}" in line

    table = sorawatch("feeds", env=env)
    assert table.returncode == 0, table.stderr
    rows = table.stdout.splitlines()
    assert rows[0].split()[:3] == ["NAME", "URL", "LAST"]
    assert len(rows) == 1 + len(FEEDS)
    assert any("البوابة العربية" in r for r in rows)

    as_json = sorawatch("feeds", "--json", env=env)
    health = json.loads(as_json.stdout)
    assert len(health) == len(FEEDS)
    assert all(h["failures"] == 0 and h["last_ok"] for h in health)
    assert sum(h["events_total"] for h in health) == len(events)


def test_feeds_shows_the_last_error(
    tmp_path: Path, feed_server: FeedServer, redis_url: str, redis: Redis
) -> None:
    url = feed_server.route("/gone.xml", Route(b"gone", status=500))
    config = tmp_path / "c.toml"
    config.write_text(f'[[feeds]]\nurl = "{url}"\nname = "Gone"\n', "utf-8")
    env = env_for(config, redis_url, tmp_path)
    done = sorawatch("watch", "--once", env=env)
    assert done.returncode == 0  # a failing feed is reported, not an exit status
    assert "failed=1" in done.stdout
    assert "HTTP 500" in done.stderr
    table = sorawatch("feeds", env=env).stdout
    assert "[http] HTTP 500" in table
    assert json.loads(sorawatch("feeds", "--json", env=env).stdout)[0]["failures"] == 1


def test_bad_settings_exit_2(tmp_path: Path, redis_url: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[watcher]\ninterval = "often"\n', "utf-8")
    done = sorawatch("watch", "--once", env=env_for(config, redis_url, tmp_path))
    assert done.returncode == 2
    assert "watcher.interval" in done.stderr


def test_no_redis_exit_3(tmp_path: Path, feed_server: FeedServer) -> None:
    config = write_config(tmp_path / "c.toml", feed_server)
    dead = f"redis://127.0.0.1:{free_port()}/0"
    done = sorawatch("watch", "--once", env=env_for(config, dead, tmp_path))
    assert done.returncode == 3
    assert "Redis" in done.stderr
    assert feed_server.requests == []


@pytest.mark.slow
def test_two_watcher_processes_append_each_event_once(
    tmp_path: Path, feed_server: FeedServer, redis_url: str, redis: Redis
) -> None:
    # A small delay per response makes the two processes overlap on every feed.
    config = write_config(tmp_path / "c.toml", feed_server, delay=0.2)
    env = env_for(config, redis_url, tmp_path)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "sorawatch.cli", "watch", "--once"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1] for o in outputs]

    events = [e for _, e in EventLog(redis, Keys()).read()]
    ids = Counter(e.id for e in events)
    items = Counter((e.data["feed"], e.data["item_key"]) for e in events)
    assert events
    assert max(ids.values()) == 1
    assert max(items.values()) == 1
    assert all(e.data["baseline"] is True for e in events)
    from sorawatch.events import queue

    assert queue("changes", redis).count == len(events)
    assert {e.data["feed"] for e in events} == {feed_server.url(f"/{n}") for n in FEEDS}


def test_watch_forever_stops_cleanly_on_sigterm(
    tmp_path: Path, feed_server: FeedServer, redis_url: str, redis: Redis
) -> None:
    env = env_for(write_config(tmp_path / "c.toml", feed_server), redis_url, tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "sorawatch.cli", "watch"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while EventLog(redis, Keys()).count() == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert EventLog(redis, Keys()).count() > 0
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "watcher stopped" in err


def test_watch_uses_the_lexicon_setting_and_refuses_a_broken_one(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[product\nname = 'x'\n", "utf-8")
    config = tmp_path / "sorawatch.toml"
    config.write_text(
        f'[watcher]\nlexicon = "{broken}"\n[[feeds]]\nurl = "http://127.0.0.1:9/f.xml"\nname = "F"\n',
        "utf-8",
    )
    env = {"PATH": os.environ.get("PATH", ""), "SORAWATCH_REDIS_URL": "redis://127.0.0.1:9/0"}
    proc = subprocess.run(
        [sys.executable, "-m", "sorawatch.cli", "--config", str(config), "watch", "--once"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "watcher.lexicon" in proc.stderr
    assert str(broken) in proc.stderr

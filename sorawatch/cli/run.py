"""`sorawatch run`: everything in one process tree.

Starts an embedded Redis when none is configured, then the watcher, the workers
and the web server as supervised child processes. Ctrl-C or SIGTERM stops them
all, Redis last, so its append-only file is flushed and the next run on the
same data folder picks up where this one stopped.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path
from types import FrameType

import click

from sorawatch.cli.context import EXIT_REDIS, Context, fail, pass_context
from sorawatch.embedded import URL_FILE, EmbeddedRedis, EmbeddedRedisError
from sorawatch.redact import redact_text
from sorawatch.settings import Settings, default_feeds
from sorawatch.supervisor import Backoff, ChildSpec, Supervisor

log = logging.getLogger("sorawatch.run")


def child_specs(
    ctx: Context, settings: Settings, redis_url: str, *, workers: int = 1
) -> list[ChildSpec]:
    """The children of `run`: one watcher, ``workers`` workers, one web server.

    Each is ``python -m sorawatch.cli ...`` with the same interpreter, the same
    settings file and log format, and the Redis URL and data folder in its
    environment.
    """
    root = [sys.executable, "-m", "sorawatch.cli"]
    if ctx.config:
        root += ["--config", str(Path(ctx.config).expanduser().resolve())]
    if ctx.log_json:
        root.append("--log-json")
    # The level the root command settled on (flag, else the `log.level` setting).
    root += ["--log-level", logging.getLevelName(logging.getLogger().getEffectiveLevel())]
    env = {
        "SORAWATCH_REDIS_URL": redis_url,
        "SORAWATCH_DATA_DIR": str(settings.data_dir),
    }
    specs = [ChildSpec("watcher", [*root, "watch"], env)]
    for n in range(1, workers + 1):
        specs.append(ChildSpec(f"worker-{n}" if workers > 1 else "worker", [*root, "work"], env))
    specs.append(ChildSpec("web", [*root, "web"], env))
    return specs


def banner(settings: Settings, redis_url: str, embedded: bool) -> str:
    """What `run` says at start, in plain words: where to look and where things go."""
    data = settings.data_dir
    if settings.smtp.host:
        mail = f"sent through {settings.smtp.host}:{settings.smtp.port} from {settings.smtp.from_}"
    else:
        mail = (
            f"no [smtp] settings, so each email is written as an .eml file to {settings.outbox_dir}"
        )
    if embedded:
        redis = f"{redis_url} (embedded; this URL is also in {data / URL_FILE})"
        where = f"{data} (Redis keeps its append-only files in {data / 'redis'})"
    else:
        redis = f"{redis_url} (configured)"
        where = str(data)
    shipped = settings.feeds == default_feeds()
    which = "the shipped default list" if shipped else (settings.source or "your settings")
    count = len(settings.feeds)
    lines = "\n".join(
        [
            "sorawatch is running.",
            f"  Status page: {settings.web.public_url}/",
            f"  Mail:        {mail}",
            f"  Data:        {where}",
            f"  Redis:       {redis}",
            f"  Feeds:       watching {count} feed{'s' if count != 1 else ''} ({which})",
            "  Subscribe from another terminal:",
            f"    SORAWATCH_REDIS_URL={redis_url} sorawatch subscribe you@example.com \\",
            "      --lang both --topics status,pricing,partnership --confirmed",
            "Press Ctrl-C to stop.",
        ]
    )
    # A configured URL may carry the Redis password: never on the screen or in a log.
    return redact_text(lines)


@click.command("run")
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Data folder (Redis files, outbox). Default: data.dir, else your user data folder.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 32),
    default=1,
    show_default=True,
    help="How many worker processes to run.",
)
@pass_context
def run_command(ctx: Context, data_dir: str | None, workers: int) -> None:
    """Run everything: embedded Redis (when none is configured), watcher, workers and web."""
    settings = ctx.settings
    if data_dir is not None:
        folder = str(Path(data_dir).expanduser().resolve())
        settings = settings.replace(data=dataclasses.replace(settings.data, dir=folder))
    data = settings.data_dir
    data.mkdir(parents=True, exist_ok=True)

    _check_web_port(settings)
    redis: EmbeddedRedis | None = None
    if settings.redis.url is None:
        try:
            redis = EmbeddedRedis(data).start()
        except (EmbeddedRedisError, OSError) as exc:
            fail(f"cannot start the embedded Redis: {exc}", EXIT_REDIS)
        redis_url = redis.url
    else:
        ctx.redis.ping()  # exits with a clear message (code 3) when Redis is unreachable
        redis_url = settings.redis.url
    settings = settings.with_redis_url(redis_url)

    stop = _StopFlag()
    previous = {sig: signal.signal(sig, stop.set) for sig in _STOP_SIGNALS}
    supervisor = Supervisor(
        child_specs(ctx, settings, redis_url, workers=workers),
        base_env=dict(os.environ),  # children read their settings from it, as we did
        backoff=Backoff(),
    )
    keeper = _RedisKeeper(redis, Backoff()) if redis is not None else None
    try:
        click.echo(banner(settings, redis_url, embedded=redis is not None))
        sys.stdout.flush()
        supervisor.start()
        supervisor.run(lambda: stop.requested, on_tick=keeper.check if keeper else None)
        log.info("stopping (%s)", stop.reason or "supervisor ended")
    finally:
        supervisor.stop()
        if redis is not None:
            redis.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo("sorawatch stopped.")


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _StopFlag:
    """Set by a signal handler; read by the supervision loop."""

    def __init__(self) -> None:
        self.requested = False
        self.reason = ""

    def set(self, signum: int, _frame: FrameType | None) -> None:
        self.requested = True
        self.reason = signal.Signals(signum).name


class _RedisKeeper:
    """Restarts the embedded Redis (same port, same data) if it dies, with backoff."""

    def __init__(self, redis: EmbeddedRedis, backoff: Backoff) -> None:
        self.redis = redis
        self.backoff = backoff
        self.failures = 0
        self.due = 0.0

    def check(self) -> None:
        if self.redis.alive() or time.monotonic() < self.due:
            return
        log.error("embedded Redis exited with code %s; restarting it", self.redis.exit_code())
        try:
            self.redis.restart()
            self.failures = 0
        except EmbeddedRedisError as exc:
            self.failures += 1
            delay = self.backoff.delay(self.failures)
            self.due = time.monotonic() + delay
            log.error("%s; trying again in %.0f s", exc, delay)


def _check_web_port(settings: Settings) -> None:
    """Fail early, in plain words, when another program holds the web port."""
    host, port = settings.web.host, settings.web.port
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            s.bind((host, port))
        except OSError as exc:
            fail(
                f"cannot serve the status page on {host}:{port}: {exc.strerror or exc} "
                "(another program uses it? set [web] port or SORAWATCH_WEB_PORT)"
            )


COMMANDS = [run_command]

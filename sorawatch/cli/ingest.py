"""`sorawatch watch [--once]` and `sorawatch feeds`: the ingest side on the command line."""

from __future__ import annotations

import json
import logging
import signal
import threading
from types import FrameType
from typing import Any

import click

from sorawatch.cli.context import EXIT_SETTINGS, Context, fail, pass_context
from sorawatch.errors import SettingsError
from sorawatch.redact import redact_url

log = logging.getLogger("sorawatch.watch")


def _poller(ctx: Context) -> Any:
    """The process's one Poller: settings, Redis, HTTP client and classifier wired up."""
    settings = ctx.settings  # exit 2 on bad settings
    # Imported here so commands that do not poll never load feedparser and the lexicon.
    from sorawatch.watcher.classify import Classifier, default_classifier, load_lexicon
    from sorawatch.watcher.fetch import make_client
    from sorawatch.watcher.poll import Poller

    if settings.watcher.lexicon:
        try:
            classifier = Classifier(load_lexicon(settings.watcher.lexicon))
        except SettingsError as exc:  # a broken lexicon stops us at start, like a bad setting
            fail(f"bad settings: watcher.lexicon: {exc}", EXIT_SETTINGS)
    else:
        classifier = default_classifier()
    redis = ctx.redis  # exit 3 when Redis is unreachable
    return Poller(settings, redis, ctx.keys, make_client(settings.watcher), classifier)


@click.command("watch")
@click.option("--once", is_flag=True, help="Poll every feed once, print a summary, and exit.")
@pass_context
def watch_command(ctx: Context, once: bool) -> None:
    """Poll the feeds and append item events to the log (forever, or --once)."""
    settings = ctx.settings  # exit 2 on bad settings, before anything else
    feeds = settings.feeds
    poller = _poller(ctx)  # exit 3 when Redis is unreachable
    try:
        if not feeds:
            click.echo("sorawatch: no feeds configured; nothing to watch", err=True)
            return
        if once:
            summary = poller.run_pass(feeds, force=True)
            for outcome in summary.outcomes:
                if outcome.outcome == "error":
                    click.echo(f"  failed: {outcome.name}: {outcome.error}", err=True)
            click.echo(f"watch --once: {summary.line()}")
            return
        _forever(poller, feeds)
    finally:
        poller.client.close()


def _forever(poller: Any, feeds: Any) -> None:
    from sorawatch.watcher.loop import run_forever

    stop = threading.Event()

    def handle(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s; stopping after the polls in flight", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    log.info("watching %d feeds", len(feeds))
    passes = run_forever(poller, feeds, stop, on_pass=lambda s: log.info("pass: %s", s.line()))
    log.info("watcher stopped after %d passes", passes)


@click.command("feeds")
@click.option("--json", "as_json", is_flag=True, help="A JSON array of each feed's health.")
@pass_context
def feeds_command(ctx: Context, as_json: bool) -> None:
    """Show each configured feed's health: last ok, failures, next due, last error."""
    from sorawatch.watcher.health import Schedule

    settings = ctx.settings
    schedule = Schedule(ctx.redis, ctx.keys)
    rows = [schedule.health(feed) for feed in settings.feeds]
    if as_json:
        found = [{**r.to_dict(), "url": redact_url(r.url)} for r in rows]
        click.echo(json.dumps(found, ensure_ascii=False, indent=2))
        return
    table = [("NAME", "URL", "LAST OK", "FAILURES", "NEXT DUE", "LAST ERROR")]
    for r in rows:
        error = f"[{r.last_error_kind}] {r.last_error}" if r.failures and r.last_error else ""
        table.append(
            (
                _cut(r.name, 32),
                _cut(redact_url(r.url), 60),
                r.last_ok or "never",
                str(r.failures),
                r.next_due or "now",
                _cut(error, 80),
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        click.echo("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())


def _cut(value: str, size: int) -> str:
    return value if len(value) <= size else value[: size - 1] + "…"


COMMANDS = [watch_command, feeds_command]

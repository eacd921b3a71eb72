"""`sorawatch work` (the RQ workers), `digest` (digests due) and `deadletters` (abandoned deliveries)."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import click

from sorawatch import clock, jobs
from sorawatch.cli.context import Context, fail, pass_context
from sorawatch.commands import redelivery
from sorawatch.events import EventLog
from sorawatch.projections import ledger

QUEUES = jobs.queues()


def _queues(value: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    unknown = [n for n in names if n not in QUEUES]
    if unknown or not names:
        raise click.BadParameter(
            f"{', '.join(unknown) or value!r}: choose among {', '.join(QUEUES)}"
        )
    return names


@click.command("work")
@click.option(
    "--burst", is_flag=True, help="Run every job due now (scheduled retries too), then exit."
)
@click.option(
    "--queues",
    default=",".join(QUEUES),
    show_default=True,
    help="Comma-separated queues to work on.",
)
@pass_context
def work_command(ctx: Context, burst: bool, queues: str) -> None:
    """Run the workers: change processing, email and webhook delivery, with retries.

    One process per queue, so a slow webhook endpoint never holds up mail;
    SIGTERM lets each finish its current job and stop.
    """
    from sorawatch.workers import worker  # the CLI wires the packages together; sorawatch does not

    names = _queues(queues)
    settings = ctx.settings
    redis = ctx.redis  # fails with exit code 3 when Redis is unreachable
    if burst:
        rounds = worker.burst(settings, redis, names)
        click.echo(f"burst done ({rounds} busy round{'s' if rounds != 1 else ''})", err=True)
        return
    raise SystemExit(worker.serve(settings, names))


@click.command("digest")
@click.option(
    "--now",
    "at",
    default=None,
    metavar="ISO",
    help="Act as if it were this instant (ISO 8601; no offset means UTC).",
)
@click.option(
    "--enqueue-only", is_flag=True, help="Queue the digests due; a running `work` sends them."
)
@pass_context
def digest_command(ctx: Context, at: str | None, enqueue_only: bool) -> None:
    """Send every digest due now: daily and weekly digests, and the catch-up of the
    alerts held past an instant subscriber's daily cap. The workers do this by
    themselves on schedule; this is for operators and tests."""
    from sorawatch.workers import digest, worker

    settings = ctx.settings
    if at is not None:
        try:
            when = datetime.fromisoformat(at.strip().replace("Z", "+00:00"))
        except ValueError:
            fail(f"--now {at!r}: not an ISO 8601 instant (e.g. 2026-12-04T08:00:00Z)", 2)
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        settings = dataclasses.replace(settings, now=when)
        clock.use(when)
    redis = ctx.redis
    due = digest.tick(EventLog(redis, ctx.keys), settings)
    click.echo(f"digests due: {due['subscribers']} subscriber(s) in {due['batches']} batch(es)")
    if not enqueue_only:
        worker.burst(settings, redis, ("email",))


@click.command("deadletters")
@click.argument("ids", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--retry", is_flag=True, help="Requeue the dead letters named by ID (or --all).")
@click.option("--all", "retry_all", is_flag=True, help="With --retry: requeue every dead letter.")
@click.option("--alert", "alert_id", default=None, help="Only this alert's dead letters.")
@pass_context
def deadletters_command(
    ctx: Context,
    ids: tuple[str, ...],
    as_json: bool,
    retry: bool,
    retry_all: bool,
    alert_id: str | None,
) -> None:
    """List abandoned deliveries; `--retry ID...` or `--retry --all` requeues them.

    Exit code 1 when an ID names no dead letter, or --retry has neither IDs nor --all.
    """
    redis, keys = ctx.redis, ctx.keys
    if retry:
        if not ids and not retry_all:
            fail("--retry needs dead letter IDs or --all")
        known = {d["id"] for d in ledger.dead_letters(redis, keys, alert_id=alert_id)}
        missing = [i for i in ids if i not in known]
        if missing:
            fail(f"{', '.join(missing)}: no such dead letter (see `sorawatch deadletters`)")
        done = redelivery.retry_dead_letters(ctx.log, sorted(known) if retry_all else ids)
        click.echo(f"requeued {len(done)} deliver{'y' if len(done) == 1 else 'ies'}")
        return
    letters = ledger.dead_letters(redis, keys, alert_id=alert_id)
    if as_json:
        for letter in letters:
            click.echo(json.dumps(letter, ensure_ascii=False, sort_keys=True))
        return
    if not letters:
        click.echo("no dead letters")
        return
    for d in letters:
        kind = "permanent" if d.get("permanent") else f"after {int(d.get('attempt', 0)) + 1} tries"
        click.echo(
            f"{d['id']}  {d['at']}  {d['channel']:<7} {d['alert_id']}  {d['recipient']}  "
            f"({kind}) {d.get('error') or ''}"
        )


COMMANDS = [work_command, digest_command, deadletters_command]

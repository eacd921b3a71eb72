"""`sorawatch events`: print or follow the event log."""

from __future__ import annotations

import click

from sorawatch.cli.context import Context, pass_context


@click.command("events")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line (the envelope).")
@click.option("--follow", "-f", is_flag=True, help="Keep printing events as they are appended.")
@click.option("--type", "types", multiple=True, help="Only events of this type (repeatable).")
@click.option(
    "--count", is_flag=True, help="Print how many events (of --type) the log holds, and exit."
)
@pass_context
def events_command(
    ctx: Context, as_json: bool, follow: bool, types: tuple[str, ...], count: bool
) -> None:
    """Print the event log, oldest first."""
    log = ctx.log
    if count:
        # With --type, what the log holds of those types (read through once).
        if types:
            click.echo(sum(1 for _sid, event in log.read() if event.type in types))
        else:
            click.echo(log.count())
        return
    source = log.follow(after="0") if follow else log.read()
    for _sid, event in source:
        if types and event.type not in types:
            continue
        if as_json:
            click.echo(event.to_json())
        else:
            summary = (
                event.data.get("title")
                or event.data.get("email")
                or event.data.get("alert_id")
                or ""
            )
            click.echo(f"{event.at}  {event.type:<24} {event.id}  {str(summary)[:80]}")


COMMANDS = [events_command]

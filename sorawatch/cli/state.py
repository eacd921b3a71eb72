"""`sorawatch state` and `sorawatch replay`: what we know now, rebuilt from the log."""

from __future__ import annotations

import json
from typing import Any

import click

from sorawatch.cli.context import Context, fail, pass_context
from sorawatch.errors import EventError
from sorawatch.projections import state
from sorawatch.projections.replay import replay


def _evidence(entry: dict[str, Any]) -> list[str]:
    return [
        f"      - {e.get('publisher') or '?'} [{e.get('lang')}]: {e.get('title')} <{e.get('url')}>"
        for e in entry.get("evidence") or []
    ]


def render(now: dict[str, Any]) -> str:
    """The state in plain English (titles stay in their own language)."""
    lines = []
    status = now["status"]
    if status:
        version = f" ({status['version']})" if status.get("version") else ""
        lines.append(
            f"Status: {status['value'].replace('_', ' ')}{version} since {status['since']}"
        )
        lines += _evidence(status)
    else:
        lines.append("Status: unknown")
    for entry in now.get("versions") or []:
        if entry is not status:
            lines.append(
                f"  {entry['version']}: {entry['value'].replace('_', ' ')} since {entry['since']}"
            )
    lines.append("Pricing:" if now["pricing"] else "Pricing: none known")
    for plan in now["pricing"]:
        lines.append(
            f"  {plan['plan']}: {plan.get('amount')} {plan.get('currency') or ''} "
            f"per {plan.get('period') or '?'} since {plan['since']}"
        )
        lines += _evidence(plan)
    lines.append("Partners:" if now["partners"] else "Partners: none known")
    for partner in now["partners"]:
        lines.append(f"  {partner['name']} since {partner['since']}")
        lines += _evidence(partner)
    ended = now.get("ended") or {}
    for plan in ended.get("pricing") or []:
        lines.append(f"  withdrawn: {plan['plan']} ({plan.get('since')} to {plan.get('until')})")
    for partner in ended.get("partners") or []:
        lines.append(
            f"  ended: {partner['name']} ({partner.get('since')} to {partner.get('until')})"
        )
    for claim in now.get("reported") or []:
        publishers = ", ".join(str(r.get("publisher")) for r in claim.get("reports") or [])
        lines.append(f"Reported, not confirmed: {claim['key']} -> {claim['after']} ({publishers})")
    c = now["counts"]
    lines.append(f"Counts: {c['items']} items, {c['stories']} stories, {c['alerts']} alerts")
    return "\n".join(lines)


@click.command("state")
@click.option("--json", "as_json", is_flag=True, help="The state as one JSON object.")
@pass_context
def state_command(ctx: Context, as_json: bool) -> None:
    """Print the current state of Sora: status, pricing, partners, counts."""
    now = state.current(ctx.redis, ctx.keys)
    if as_json:
        click.echo(json.dumps(now, ensure_ascii=False, indent=2))
    else:
        click.echo(render(now))


@click.command("replay")
@pass_context
def replay_command(ctx: Context) -> None:
    """Rebuild every projection from the event log (stop the workers first)."""

    def progress(done: int, total: int) -> None:
        click.echo(f"replay: {done}/{total} events", err=True)

    try:
        counts = replay(ctx.redis, ctx.keys, ctx.log, progress=progress)
    except EventError as exc:
        fail(f"replay stopped: {exc}")
    click.echo(json.dumps(counts, ensure_ascii=False))


COMMANDS = [state_command, replay_command]

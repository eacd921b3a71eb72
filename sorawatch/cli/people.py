"""`sorawatch subscribe`, `unsubscribe` and `webhook add|list|remove`: who hears of alerts."""

from __future__ import annotations

import json

import click

from sorawatch import schedule
from sorawatch.cli.context import Context, fail, pass_context
from sorawatch.commands import endpoints, subscriptions
from sorawatch.errors import ValidationError
from sorawatch.projections import subscribers, webhooks


@click.command("subscribe")
@click.argument("email")
@click.option("--lang", required=True, help="ar, en or both.")
@click.option("--topics", required=True, help="Comma-separated: status,pricing,partnership.")
@click.option("--kinds", default="change,news", show_default=True, help="change,news.")
@click.option(
    "--early",
    is_flag=True,
    help="Also mail a story's first report before a second source confirms it.",
)
@click.option("--confirmed", is_flag=True, help="Skip the double opt-in (you vouch for it).")
@click.option(
    "--cadence",
    default=None,
    help="instant (default: each alert as it comes), daily or weekly (one digest).",
)
@click.option("--tz", default=None, help="IANA time zone of the digest hour (default UTC).")
@click.option("--hour", default=None, help="Hour of the digest, 0-23 (default 8; weekly: Mondays).")
@click.option(
    "--max-per-day",
    default=None,
    help="Instant: at most N alerts a day, the rest in the next digest (default 10; 0: no cap).",
)
@pass_context
def subscribe_command(
    ctx: Context,
    email: str,
    lang: str,
    topics: str,
    kinds: str,
    early: bool,
    confirmed: bool,
    cadence: str | None,
    tz: str | None,
    hour: str | None,
    max_per_day: str | None,
) -> None:
    """Subscribe EMAIL to alerts (pending until confirmed, unless --confirmed).

    Without --confirmed, the confirmation mail is queued, as the web form does (at
    most one per address a day: `web.confirm_interval`)."""
    note = ""
    if early:
        kinds = f"{kinds},early"
    try:
        # Checked before Redis is touched: a bad value writes nothing.
        subscriptions.normalize_email(email)
        timing = schedule.choose(cadence, tz, hour, max_per_day)
        if confirmed:
            sub = subscriptions.request(
                ctx.log, email, lang, topics, kinds, confirmed=True, timing=timing
            )
        else:
            web = ctx.settings.web
            asked = subscriptions.ask(
                ctx.log, email, lang, topics, kinds, timing=timing,
                pending_ttl=web.pending_ttl, confirm_interval=web.confirm_interval,
            )  # fmt: skip
            sub = asked.subscriber
            if asked.mail:
                subscriptions.queue_confirmation(ctx.log, sub.email, web.pending_ttl)
                note = "; confirmation mail queued"
            elif sub.status == "pending":
                note = "; a confirmation mail went to this mailbox within web.confirm_interval"
    except ValidationError as exc:
        fail(str(exc))
    click.echo(
        f"{sub.email}: {sub.status} (lang {sub.lang}; topics {','.join(sub.topics)}; "
        f"kinds {','.join(sub.kinds)}; {_cadence(sub)}{note})"
    )


def _cadence(sub: subscribers.Subscriber) -> str:
    if sub.cadence == "instant":
        cap = f"at most {sub.max_per_day} a day" if sub.max_per_day else "no daily cap"
        return f"instant, {cap}, catch-up at {sub.hour:02d}:00 {sub.tz}"
    day = " on Mondays" if sub.cadence == "weekly" else ""
    return f"{sub.cadence} digest at {sub.hour:02d}:00 {sub.tz}{day}"


@click.command("unsubscribe")
@click.argument("email")
@pass_context
def unsubscribe_command(ctx: Context, email: str) -> None:
    """Stop all alerts to EMAIL."""
    if subscriptions.unsubscribe(ctx.log, email):
        click.echo(f"{email.strip().lower()}: unsubscribed")
    else:
        fail(f"{email}: not subscribed")


@click.group("webhook")
def webhook_group() -> None:
    """Webhook endpoints that receive signed JSON alerts."""


@webhook_group.command("add")
@click.argument("url")
@click.option("--secret", default=None, help="whsec_... (generated and printed once if unset).")
@click.option("--lang", default="both", show_default=True, help="ar, en or both.")
@click.option("--topics", default="status,pricing,partnership", show_default=True)
@click.option("--kinds", default="change,news", show_default=True)
@pass_context
def webhook_add(
    ctx: Context, url: str, secret: str | None, lang: str, topics: str, kinds: str
) -> None:
    """Register URL; prints its id (and the secret, when generated)."""
    try:
        hook, key = endpoints.register(
            ctx.log, url, secret=secret, lang=lang, topics=topics, kinds=kinds,
            allow_private=ctx.settings.webhooks.allow_private,
        )  # fmt: skip
    except ValidationError as exc:
        fail(str(exc))
    click.echo(f"{hook.id}  {hook.url}")
    if secret is None:
        click.echo(f"secret: {key}")
        click.echo("(shown once: store it where the receiver can verify signatures)", err=True)


@webhook_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@pass_context
def webhook_list(ctx: Context, as_json: bool) -> None:
    """List registered webhooks (secrets are never shown)."""
    for hook in webhooks.list_all(ctx.redis, ctx.keys):
        if as_json:
            click.echo(json.dumps(hook.to_dict(), ensure_ascii=False))
            continue
        state = "active" if hook.active else f"disabled ({hook.disabled_reason})"
        click.echo(
            f"{hook.id}  {hook.url}  lang={hook.lang} topics={','.join(hook.topics)} "
            f"kinds={','.join(hook.kinds)}  {state}"
        )


@webhook_group.command("remove")
@click.argument("webhook_id")
@pass_context
def webhook_remove(ctx: Context, webhook_id: str) -> None:
    """Remove a webhook and forget its secret."""
    if not endpoints.remove(ctx.log, webhook_id):
        fail(f"{webhook_id}: no such webhook")
    click.echo(f"{webhook_id}: removed")


COMMANDS = [subscribe_command, unsubscribe_command, webhook_group]

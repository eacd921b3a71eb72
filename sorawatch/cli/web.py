"""`sorawatch web`: serve the status page, subscribe flow, Atom feed and admin API."""

from __future__ import annotations

import click

from sorawatch.cli.context import Context, pass_context


@click.command("web")
@click.option("--host", default=None, help="Address to listen on (default: web.host).")
@click.option(
    "--port", default=None, type=click.IntRange(0, 65535), help="Port (default: web.port)."
)
@pass_context
def web_command(ctx: Context, host: str | None, port: int | None) -> None:
    """Serve the web app with uvicorn."""
    import uvicorn

    from sorawatch.web.app import create_app

    settings = ctx.settings
    app = create_app(settings, ctx.redis)
    uvicorn.run(
        app,
        host=host or settings.web.host,
        port=settings.web.port if port is None else port,
        log_config=None,  # keep the logging the root command set up
        proxy_headers=False,  # client addresses feed the rate limit: trust no header
        server_header=False,
    )


COMMANDS = [web_command]

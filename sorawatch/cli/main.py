"""The root command. Each module below contributes its commands in ``COMMANDS``."""

from __future__ import annotations

import click

from sorawatch import __version__, logs
from sorawatch.cli import classify, delivery, events, ingest, people, run, state, web
from sorawatch.cli.context import Context
from sorawatch.errors import SettingsError
from sorawatch.settings import load_settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "-c",
    type=click.Path(dir_okay=False),
    envvar="SORAWATCH_CONFIG",
    help="Settings file (TOML). Default: embedded defaults and SORAWATCH_* variables.",
)
@click.option("--log-json", is_flag=True, help="Log one JSON object per line.")
@click.option("--log-level", default=None, help="DEBUG, INFO, WARNING or ERROR.")
@click.version_option(__version__, prog_name="sorawatch")
@click.pass_context
def cli(ctx: click.Context, config: str | None, log_json: bool, log_level: str | None) -> None:
    """Watch the news for OpenAI's Sora and alert people when something real changes."""
    obj = Context(config=config, log_json=log_json)
    ctx.obj = obj
    # Settings are loaded lazily so `--help` works without them; logging uses them if valid.
    level = log_level or "INFO"
    if not log_json or log_level is None:
        try:
            obj.loaded = load_settings(config)  # loaded once: the commands take these
            configured = obj.loaded.log  # `log.json` / SORAWATCH_LOG_JSON, `log.level`
        except SettingsError:
            configured = None  # the command that needs settings reports it, with exit code 2
        if configured is not None:
            log_json = log_json or configured.json
            level = log_level or configured.level
            obj.log_json = log_json
    logs.setup(level.upper(), json_lines=log_json)


for module in (events, ingest, classify, run, web, people, state, delivery):
    for command in module.COMMANDS:
        cli.add_command(command)


def main() -> None:
    cli(prog_name="sorawatch")

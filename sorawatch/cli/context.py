"""What every command shares: settings loaded once, the Redis connection, exit codes."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from functools import cached_property
from typing import NoReturn

import click
from redis import Redis
from redis.exceptions import RedisError

from sorawatch import clock
from sorawatch.errors import SettingsError
from sorawatch.events import EventLog
from sorawatch.keys import Keys
from sorawatch.redact import redact_text, redact_url
from sorawatch.settings import Settings, load_settings
from sorawatch.store import connect

EXIT_SETTINGS = 2
EXIT_REDIS = 3


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"sorawatch: {redact_text(message)}", err=True)
    sys.exit(code)


@dataclass
class Context:
    """Built once per invocation by the root command; commands take what they need."""

    config: str | None = None
    log_json: bool = False
    overrides: dict[str, object] = field(default_factory=dict)
    loaded: Settings | None = None  # what the root command already loaded, if it did

    @cached_property
    def settings(self) -> Settings:
        try:
            settings = self.loaded or load_settings(self.config)
        except SettingsError as exc:
            fail(f"bad settings: {exc}", EXIT_SETTINGS)
        clock.use(settings.now)  # every command decides by the configured clock
        return settings

    @cached_property
    def keys(self) -> Keys:
        return Keys(self.settings.redis.prefix)

    @cached_property
    def redis(self) -> Redis:
        settings = self.settings
        try:
            client = connect(settings, retries=2)
            client.ping()
        except SettingsError as exc:
            fail(str(exc), EXIT_SETTINGS)
        except RedisError as exc:
            fail(f"cannot reach Redis at {redact_url(settings.redis.url or '')}: {exc}", EXIT_REDIS)
        return connect(settings)

    @cached_property
    def log(self) -> EventLog:
        return EventLog(self.redis, self.keys)


pass_context = click.make_pass_decorator(Context)

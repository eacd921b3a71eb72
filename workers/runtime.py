"""What a job function needs, built once per worker process.

RQ job functions are thin, module-level and take ids and plain values; they get
their collaborators (settings, Redis, event log) from here. The `work` command
configures it at start; a test configures it before running a SimpleWorker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from redis import Redis

from sorawatch import clock
from sorawatch.events import EventLog
from sorawatch.keys import Keys
from sorawatch.settings import Settings, load_settings
from sorawatch.store import connect


@dataclass
class Runtime:
    settings: Settings
    redis: Redis
    keys: Keys
    log: EventLog
    # Collaborators the delivery code may replace (a mailer, an HTTP client, a clock).
    extras: dict[str, Any] = field(default_factory=dict)


_current: Runtime | None = None


def configure(settings: Settings, redis: Redis | None = None, **extras: Any) -> Runtime:
    """Set the runtime for this process and return it."""
    global _current
    clock.use(settings.now)  # jobs decide by the configured clock; work horses inherit it
    redis = redis if redis is not None else connect(settings)
    keys = Keys(settings.redis.prefix)
    _current = Runtime(settings, redis, keys, EventLog(redis, keys), dict(extras))
    return _current


def current() -> Runtime:
    """The configured runtime; built from the environment's settings if none was set."""
    if _current is None:
        return configure(load_settings())
    return _current


def reset() -> None:
    global _current
    _current = None

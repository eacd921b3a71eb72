"""What a job function needs, built once per worker process.

RQ job functions are thin, module-level and take ids and plain values; they get
their collaborators (settings, Redis, event log) from here. The `work` command
configures it at start (RQ's work horses fork from a configured worker and inherit
it); a test configures it before running a SimpleWorker. A job in a process that
never configured it fails: settings are loaded once, by the entry point.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from redis import Redis

from sorawatch import clock
from sorawatch.errors import SorawatchError
from sorawatch.events import EventLog
from sorawatch.keys import Keys
from sorawatch.settings import Settings
from sorawatch.store import connect


@dataclass
class Runtime:
    settings: Settings
    redis: Redis
    keys: Keys
    log: EventLog
    # Collaborators the delivery code may replace (a mailer, an HTTP client, a clock).
    extras: dict[str, Any] = field(default_factory=dict)


class NotConfiguredError(SorawatchError):
    """A job ran in a process whose runtime was never configured."""


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
    """The configured runtime. Raises NotConfiguredError when this process never
    called ``configure`` (the entry point that runs jobs must)."""
    if _current is None:
        raise NotConfiguredError(
            "the workers' runtime is not configured in this process: call "
            "sorawatch.workers.runtime.configure(settings, redis) before running jobs "
            "(sorawatch work and sorawatch.workers.worker.burst do)"
        )
    return _current


def reset() -> None:
    global _current
    _current = None

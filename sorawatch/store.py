"""The Redis connection: one place that builds it, with reconnect and backoff.

RQ needs raw bytes (``decode_responses=False``), so every module shares one
bytes client and decodes what it reads.
"""

from __future__ import annotations

from typing import Any, overload

from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import BusyLoadingError, ConnectionError, TimeoutError
from redis.retry import Retry

from sorawatch.errors import SettingsError
from sorawatch.settings import Settings


def connect(settings: Settings, *, retries: int = 8) -> Redis:
    """A Redis client for ``settings.redis.url`` that retries dropped connections.

    Each command is retried with exponential backoff (0.1 s doubling to 5 s), so a
    Redis restart of a few seconds is survived without anyone restarting us.
    Raises SettingsError when no URL is configured.
    """
    url, options = _options(settings)
    retry = Retry(ExponentialWithJitterBackoff(cap=5.0, base=0.1), retries)
    return Redis.from_url(url, retry=retry, health_check_interval=30, **options)


def connect_async(settings: Settings, *, retries: int = 8) -> AsyncRedis:
    """An asyncio client for the same URL, with the same retries and backoff, for
    Redis writes made from inside an event loop (a blocking call there stalls every
    coroutine). One connection, no pool: its callers write one command at a time.
    Build it inside the loop that uses it, and ``await client.aclose()``.
    Raises SettingsError when no URL is configured."""
    url, options = _options(settings)
    retry = AsyncRetry(ExponentialWithJitterBackoff(cap=5.0, base=0.1), retries)
    return AsyncRedis.from_url(url, retry=retry, single_connection_client=True, **options)


def _options(settings: Settings) -> tuple[str, dict[str, Any]]:
    """The URL and the connection options both clients share; SettingsError without a URL."""
    if not settings.redis.url:
        raise SettingsError("redis.url: not set (set SORAWATCH_REDIS_URL, or use `sorawatch run`)")
    return settings.redis.url, {
        "retry_on_error": [ConnectionError, TimeoutError, BusyLoadingError],
        "socket_connect_timeout": 5,
        "socket_keepalive": True,
    }


@overload
def text(value: None) -> None: ...
@overload
def text(value: bytes | str | int | float | list[Any] | tuple[Any, ...]) -> str: ...
def text(value: Any) -> str | None:
    """A Redis reply as text (UTF-8): the one bytes → text helper. None stays None."""
    if value is None:
        return None
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)

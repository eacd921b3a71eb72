"""Fixed-window rate limits kept in Redis, shared by every web process."""

from __future__ import annotations

from redis import Redis

from sorawatch.errors import SorawatchError
from sorawatch.keys import Keys


class RateLimited(SorawatchError):
    """Over the limit; ``retry_after`` is the seconds until the window ends."""

    def __init__(self, scope: str, retry_after: int) -> None:
        super().__init__(f"{scope}: too many requests, retry in {retry_after} s")
        self.retry_after = retry_after


def hit(redis: Redis, keys: Keys, scope: str, ident: str, limit: int, window: int) -> int:
    """Count one request for ``ident`` in ``scope``; return the count in this window.

    Raises RateLimited when the count passes ``limit``. Writes a counter key that
    expires with its window (SET NX EX then INCR in one MULTI, so the expiry is
    never lost).
    """
    key = keys.rate_limit(scope, ident)
    with redis.pipeline() as pipe:
        pipe.set(key, 0, ex=window, nx=True)
        pipe.incr(key)
        pipe.ttl(key)
        _, count, ttl = pipe.execute()
    if int(count) > limit:
        raise RateLimited(scope, max(int(ttl), 1))
    return int(count)

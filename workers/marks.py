"""Sent marks written from inside a delivery job's event loop.

A message is marked sent in Redis right after the server accepted it, so a worker
killed mid-batch re-sends at most the messages in flight (see
``sorawatch.projections.ledger``). Written with the blocking client, each mark
stalled every coroutine of the batch for a round trip (18 % of an email batch's
time). ``SentMarks`` writes them through ``redis.asyncio`` instead, and the marks
that arrive while a write is on the wire go together in the next one (one ``HSET``
of many fields; the first write also sets the hash's TTL): a group commit. ``mark`` still
returns only once its own mark is in Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from redis.asyncio import Redis as AsyncRedis

from sorawatch.events import utcnow
from sorawatch.keys import Keys
from sorawatch.projections import ledger
from sorawatch.workers import waits


class SentMarks:
    """``await marks.mark(recipient)``: recipient marked sent for one alert and channel."""

    def __init__(self, client: AsyncRedis, keys: Keys, alert_id: str, channel: str) -> None:
        self.client = client
        self.key = keys.sent_marks(alert_id, channel)
        self._fields: dict[str, str] = {}
        self._forget: set[str] = set()
        self._waiters: list[asyncio.Future[None]] = []
        self._writer: asyncio.Task[None] | None = None
        # The hash's TTL is set with the first write; later writes are a bare HSET.
        self._expiring = False

    async def mark(self, recipient: str, forget: Iterable[str] = ()) -> None:
        """Mark ``recipient`` sent (and delete the keys in ``forget`` in the same write);
        returns once that is in Redis. Raises what the Redis client raises after its
        retries (the batch job then fails and RQ re-runs it)."""
        await self.add(recipient, forget)

    def add(self, recipient: str, forget: Iterable[str] = ()) -> asyncio.Future[None]:
        """Start marking ``recipient`` sent; the future is done once the mark is in
        Redis (or holds the error). For a caller that sends its next message meanwhile."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._fields[recipient] = utcnow()
        self._forget.update(forget)
        self._waiters.append(waiter)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write())
        return waiter

    async def _write(self) -> None:
        try:
            while self._fields:
                fields, forget, waiters = self._fields, self._forget, self._waiters
                self._fields, self._forget, self._waiters = {}, set(), []
                started = asyncio.get_running_loop().time()
                try:
                    if self._expiring and not forget:
                        await self.client.hset(self.key, mapping=fields)  # type: ignore[arg-type]
                    else:
                        async with self.client.pipeline(transaction=False) as pipe:
                            pipe.hset(self.key, mapping=fields)  # type: ignore[arg-type]
                            if not self._expiring:
                                pipe.expire(self.key, ledger.SENT_MARK_TTL)
                            if forget:
                                pipe.delete(*forget)
                            await pipe.execute()
                        self._expiring = True
                except Exception as exc:
                    _settle(waiters, exc)
                except BaseException as exc:  # cancelled with the loop: nobody waits any more
                    _settle(waiters + self._waiters, exc)
                    raise
                else:
                    _settle(waiters, None)
                finally:
                    elapsed = asyncio.get_running_loop().time() - started
                    waits.report(f"Redis to record {len(fields)} sent mark(s)", elapsed)
        finally:
            self._writer = None


def _settle(waiters: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for waiter in waiters:
        if waiter.done():
            continue  # its caller was cancelled
        if error is None:
            waiter.set_result(None)
        elif isinstance(error, asyncio.CancelledError):
            waiter.cancel()
        else:
            waiter.set_exception(error)

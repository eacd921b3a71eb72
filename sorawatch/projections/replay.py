"""Rebuild every projection from the event log alone.

Deletes every key under ``keys.projection(...)`` (the ``<prefix>:p:`` namespace;
secrets, queues, metrics and watcher state are elsewhere and untouched), then
applies every event in log order through ``apply``: the same path the live
system took, so the result is the same. Run it with the workers stopped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from redis import Redis

from sorawatch.events import EventLog
from sorawatch.keys import Keys
from sorawatch.projections import apply

Progress = Callable[[int, int], None]


def clear(redis: Redis, keys: Keys) -> int:
    """Delete every projection key; returns how many were deleted."""
    pattern = keys.projection("*")
    deleted = 0
    batch: list[bytes] = []
    for key in redis.scan_iter(match=pattern, count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            deleted += int(redis.unlink(*batch))
            batch = []
    if batch:
        deleted += int(redis.unlink(*batch))
    return deleted


def replay(
    redis: Redis, keys: Keys, log: EventLog, progress: Progress | None = None, every: int = 1000
) -> dict[str, int]:
    """Clear the projections and re-apply the whole log; returns counts per event type
    (and ``events``, ``deleted_keys``). ``progress(done, total)`` is called every
    ``every`` events and at the end. Raises EventError for an event no handler knows.
    """
    total = log.count()
    deleted = clear(redis, keys)
    counts: Counter[str] = Counter()
    done = 0
    for _sid, event in log.read():
        apply(redis, keys, event)
        counts[event.type] += 1
        done += 1
        if progress is not None and done % every == 0:
            progress(done, total)
    if progress is not None:
        progress(done, total)
    return {"events": done, "deleted_keys": deleted, **dict(sorted(counts.items()))}

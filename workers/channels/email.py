"""The email channel: confirmed subscribers, sent by ``sorawatch.workers.email.deliver_email``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from redis import Redis

from sorawatch import jobs
from sorawatch.keys import Keys
from sorawatch.projections import subscribers
from sorawatch.settings import Settings
from sorawatch.workers.channels.base import Channel


def recipients(
    redis: Redis, keys: Keys, topics: Sequence[str], kind: str | None, size: int
) -> Iterable[list[str]]:
    """Confirmed subscribers wanting any of ``topics`` and ``kind``, each once: the
    index's pages for one topic, one sorted page for several."""
    if kind is None:
        return []
    pages = [subscribers.matching(redis, keys, t, kind, page=max(size, 500)) for t in topics]
    return pages[0] if len(pages) == 1 else [sorted({e for p in pages for b in p for e in b})]


def schedule(settings: Settings) -> Sequence[int]:
    return settings.workers.retry_schedule


def pace(settings: Settings) -> tuple[float, int]:
    return settings.smtp.deadline, settings.smtp.concurrency


CHANNEL = Channel(jobs.EMAIL, recipients, schedule, pace)

"""The webhook channel: active endpoints, posted to by ``sorawatch.workers.webhook.deliver_webhooks``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from redis import Redis

from sorawatch import jobs
from sorawatch.keys import Keys
from sorawatch.projections import webhooks
from sorawatch.settings import Settings
from sorawatch.workers.channels.base import Channel


def recipients(
    redis: Redis, keys: Keys, topics: Sequence[str], kind: str | None, size: int
) -> Iterable[list[str]]:
    """Ids of active webhooks wanting any of ``topics`` and ``kind``, sorted, each once."""
    if kind is None:
        return []
    return [sorted({h for t in topics for h in webhooks.matching(redis, keys, t, kind)})]


def schedule(settings: Settings) -> Sequence[int]:
    return settings.webhooks.retry_schedule


def pace(settings: Settings) -> tuple[float, int]:
    return settings.webhooks.timeout * 2, settings.webhooks.concurrency


CHANNEL = Channel(jobs.WEBHOOK, recipients, schedule, pace)

"""Helpers the delivery tests share: settings for a local SMTP server, alerts, workers."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable
from typing import Any

from redis import Redis
from rq.serializers import JSONSerializer

from sorawatch import store
from sorawatch.commands import subscriptions
from sorawatch.events import Event, EventLog, queue
from sorawatch.keys import Keys
from sorawatch.settings import Settings, SmtpSettings
from sorawatch.workers import runtime
from sorawatch.workers.marks import SentMarks
from sorawatch.workers.worker import BurstWorker

QUEUES = ("changes", "email", "webhook")


def with_smtp(settings: Settings, port: int | None, **smtp: Any) -> Settings:
    """``settings`` sending to 127.0.0.1:``port`` (None: the outbox folder)."""
    host = "127.0.0.1" if port is not None else None
    values = {"host": host, "port": port or 25, "from_": "Sorawatch <alerts@watch.example.test>"}
    values.update(smtp)
    return dataclasses.replace(settings, smtp=SmtpSettings(**values))


def setup_runtime(settings: Settings, redis: Redis, **extras: Any) -> runtime.Runtime:
    return runtime.configure(settings, redis, **extras)


def mark_sent(settings: Settings, alert_id: str, channel: str, recipient: str) -> None:
    """Mark ``recipient`` sent as a delivery job does right after the server accepted
    the message (``SentMarks``), as if the worker were killed before its batch event."""

    async def mark() -> None:
        client = store.connect_async(settings)
        try:
            await SentMarks(client, keys_of(settings), alert_id, channel).mark(recipient)
        finally:
            await client.aclose()

    asyncio.run(mark())


def subscribe(log: EventLog, email: str, lang: str, topics: Iterable[str] | None = None,
              kinds: Iterable[str] | None = None, confirmed: bool = True) -> None:  # fmt: skip
    subscriptions.request(log, email, lang, topics, kinds, confirmed=confirmed)


def run_jobs(redis: Redis, queues: Iterable[str] = QUEUES) -> None:
    """Run every queued job (and those they enqueue) in this process."""
    qs = [queue(name, redis) for name in queues]
    BurstWorker(qs, connection=redis, serializer=JSONSerializer).work(burst=True)


def events_of(log: EventLog, *types: str) -> list[Event]:
    return [e for _, e in log.read() if e.type in types]


def failed_jobs(redis: Redis, names: Iterable[str] = QUEUES) -> list[str]:
    """Ids and reasons of failed jobs, so a test shows why a job crashed."""
    from rq.job import Job as RqJob

    out = []
    for name in names:
        q = queue(name, redis)
        for jid in q.failed_job_registry.get_job_ids():
            job = RqJob.fetch(jid, connection=redis, serializer=JSONSerializer)
            out.append(f"{jid}: {job.latest_result().exc_string if job.latest_result() else '?'}")
    return out


def keys_of(settings: Settings) -> Keys:
    return Keys(settings.redis.prefix)

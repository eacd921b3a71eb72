"""Alerts raised: one record per ``alert.raised`` event, newest first.

Keys under ``keys.projection("alerts")``: ``:a:<alert_id>`` (the record as JSON),
``:recent`` and ``:topic:<topic>`` (ids by raise time), ``:news:<topic>:<sig>``
(news alerts per fact signature, so the change worker can tell whether the news
of an event was already told within the window).

``:story:<story>`` (kind → alert id: the messages a story has had, so a story gets
one first report and at most one update).

An alert record (the contract): ``alert_id``, ``topic``, ``kind``, ``before``,
``after``, ``facts``, ``title``, ``title_lang``, ``summary``, ``sources``,
``story``, ``raised_at``, ``baseline``; story alerts add ``topics``, ``changes``
(every change told, most important first), ``confirmed`` and ``want`` (channel →
the subscription kind its recipients want). A later copy of a story adds itself to
the ``sources`` of the story's alerts (the status page and the Atom feed show them).
"""

from __future__ import annotations

from typing import Any

from redis import Redis

from sorawatch.event_data import AlertRaised, Source, StoryMerged
from sorawatch.events import Event
from sorawatch.keys import Keys, digest
from sorawatch.projections import handles
from sorawatch.projections._common import dumps, epoch, loads, text


def _ns(keys: Keys) -> str:
    return keys.projection("alerts")


def news_key(keys: Keys, topic: str, signature: str) -> str:
    """The sorted set of news alerts told for ``topic`` with this fact signature."""
    return f"{_ns(keys)}:news:{topic}:{digest(signature)}"


def of_story(redis: Redis, keys: Keys, story: str) -> dict[str, str]:
    """The alerts raised about ``story``, by kind (story, update, early)."""
    return {text(k): text(v) for k, v in redis.hgetall(f"{_ns(keys)}:story:{story}").items()}


def get(redis: Redis, keys: Keys, alert_id: str) -> dict[str, Any] | None:
    """The alert record, or None."""
    raw = loads(redis.get(f"{_ns(keys)}:a:{alert_id}"))
    return raw if isinstance(raw, dict) else None


def recent(
    redis: Redis, keys: Keys, limit: int = 50, topic: str | None = None
) -> list[dict[str, Any]]:
    """The newest alerts first (of one topic, when given)."""
    index = f"{_ns(keys)}:topic:{topic}" if topic else f"{_ns(keys)}:recent"
    ids = [text(i) for i in redis.zrevrange(index, 0, max(limit, 0) - 1)]
    if not ids:
        return []
    rows = redis.mget([f"{_ns(keys)}:a:{i}" for i in ids])
    return [loads(r) for r in rows if r is not None]


def raised_between(redis: Redis, keys: Keys, after: float, until: float) -> list[str]:
    """Ids of the alerts raised after ``after`` and at or before ``until`` (epoch
    seconds), oldest first."""
    return [text(i) for i in redis.zrangebyscore(f"{_ns(keys)}:recent", f"({after}", until)]


def get_many(redis: Redis, keys: Keys, alert_ids: list[str]) -> list[dict[str, Any]]:
    """The alert records of ``alert_ids`` that exist, in that order."""
    if not alert_ids:
        return []
    rows = redis.mget([f"{_ns(keys)}:a:{i}" for i in alert_ids])
    return [r for r in (loads(row) for row in rows) if isinstance(r, dict)]


def count(redis: Redis, keys: Keys, topic: str | None = None) -> int:
    """How many alerts were raised (of one topic, when given)."""
    index = f"{_ns(keys)}:topic:{topic}" if topic else f"{_ns(keys)}:recent"
    return int(redis.zcard(index))


@handles("alert.raised")
def _on_raised(redis: Redis, keys: Keys, event: Event) -> None:
    record = event.data_as(AlertRaised)
    alert_id = record["alert_id"]
    score = epoch(record.get("raised_at") or event.at)
    with redis.pipeline() as pipe:
        pipe.set(f"{_ns(keys)}:a:{alert_id}", dumps(record))
        pipe.zadd(f"{_ns(keys)}:recent", {alert_id: score})
        pipe.zadd(f"{_ns(keys)}:topic:{record['topic']}", {alert_id: score})
        if record["kind"] in ("story", "update", "early"):
            pipe.hsetnx(f"{_ns(keys)}:story:{record['story']}", record["kind"], alert_id)
        signature = record.get("signature")
        if record["kind"] == "news" and signature is not None:
            pipe.zadd(news_key(keys, record["topic"], signature), {alert_id: score})
        pipe.execute()


MAX_SOURCES = 30


@handles("story.merged")
def _on_merged(redis: Redis, keys: Keys, event: Event) -> None:
    """A later copy of a story becomes a source of the story's alerts."""
    d = event.data_as(StoryMerged)
    ids = list(of_story(redis, keys, d["story"]).values())
    if not ids or not d.get("url"):
        return
    source: Source = {"url": d.get("url"), "title": d.get("title"), "publisher": d.get("source"),
                      "lang": d.get("lang"), "published": d.get("published")}  # fmt: skip
    for alert_id in ids:
        record = get(redis, keys, alert_id)
        sources = (record or {}).get("sources") or []
        if record is None or len(sources) >= MAX_SOURCES:
            continue
        if any(s.get("url") == source["url"] for s in sources):
            continue
        record["sources"] = [*sources, source]
        redis.set(f"{_ns(keys)}:a:{alert_id}", dumps(record))

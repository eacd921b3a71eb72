"""Detecting new and revised items, and turning the relevant ones into events.

Per feed, a Redis hash maps item key → what we last saw: the content hash, the
hash of the last version that became an event (None while the item has only
ever been irrelevant), and the day it was last in the feed. So a re-poll of an
unchanged item costs one hash lookup and no classification; a changed one is
classified again; and an item that only now becomes relevant is ``item.seen``,
not ``item.revised`` of something nobody was told about.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from redis import Redis

from sorawatch import clock, jobs
from sorawatch.event_data import ItemRevised, ItemSeen
from sorawatch.events import Event, Job
from sorawatch.keys import Keys
from sorawatch.store import text
from sorawatch.watcher.normalise import Item

# Items that left the feed are forgotten after this long; if one comes back, its
# event id is unchanged, so the idempotent append still keeps it from doubling.
FORGET_AFTER_DAYS = 45


class Classification(Protocol):
    @property
    def relevant(self) -> bool: ...
    @property
    def topics(self) -> tuple[str, ...]: ...
    @property
    def facts(self) -> Mapping[str, Any]: ...


class Classifier(Protocol):
    def classify(
        self, title: str, summary: str, lang: str, first_party: bool = ...
    ) -> Classification: ...


@dataclass(frozen=True, slots=True)
class Seen:
    """What we remember of one item."""

    hash: str
    event_hash: str | None  # the content hash of its last event, if any
    day: int  # days since the epoch when it was last in the feed

    def to_json(self) -> str:
        return json.dumps({"h": self.hash, "e": self.event_hash, "d": self.day})

    @classmethod
    def from_json(cls, raw: str | None) -> Seen | None:
        try:
            doc = json.loads(raw or "")
            return cls(str(doc["h"]), doc.get("e"), int(doc.get("d", 0)))
        except (ValueError, KeyError, TypeError):
            return None  # unreadable state is treated as never seen: ids stop doubling


@dataclass(slots=True)
class Detection:
    """The outcome of comparing one poll with what we remembered."""

    events: list[Event] = field(default_factory=list)
    updates: dict[str, Seen] = field(default_factory=dict)
    classified: int = 0
    unchanged: int = 0
    irrelevant: int = 0


@dataclass(frozen=True, slots=True)
class Memory:
    """What one read of a feed's item hash gives: the state of this poll's items, and the
    fields of items gone from the feed long enough to forget (or unreadable)."""

    seen: dict[str, Seen]
    stale: list[bytes]


def load_seen(
    redis: Redis, keys: Keys, feed_url: str, items: Sequence[Item], *, today: int | None = None
) -> Memory:
    """What we remember of ``items`` (by key), and what to forget, in one HGETALL.

    The whole hash is read (not only this poll's items) so that forgetting items long
    gone from the feed costs no second round trip.
    """
    raw: dict[bytes, bytes] = redis.hgetall(keys.feed_items(feed_url))  # type: ignore[assignment]
    if not raw:
        return Memory({}, [])
    current = {item.key for item in items}
    oldest = (today if today is not None else clock.day()) - FORGET_AFTER_DAYS
    seen: dict[str, Seen] = {}
    stale: list[bytes] = []
    for field_, value in raw.items():
        name = field_.decode("utf-8", errors="surrogateescape")
        known = Seen.from_json(text(value))
        if name in current:
            if known is not None:
                seen[name] = known
        elif known is None or known.day < oldest:
            stale.append(field_)
    return Memory(seen, stale)


def detect(
    feed_url: str,
    items: Iterable[Item],
    seen: Mapping[str, Seen],
    classifier: Classifier,
    *,
    baseline: bool,
    today: int | None = None,
    official: bool = False,
) -> Detection:
    """Compare ``items`` with ``seen`` and build the events for relevant new or revised items.

    Events come out oldest first (feeds list newest first). ``official``: the feed is a
    first-party source (its reports confirm a change alone). Writes nothing.
    """
    day = today if today is not None else clock.day()
    out = Detection()
    unique: dict[str, Item] = {}
    for item in items:
        unique.setdefault(item.key, item)  # a feed repeating a guid: the first copy counts
    for item in reversed(list(unique.values())):
        before = seen.get(item.key)
        if before is not None and before.hash == item.content_hash:
            out.unchanged += 1
            out.updates[item.key] = Seen(before.hash, before.event_hash, day)
            continue
        verdict = classifier.classify(item.title, item.summary, item.lang, first_party=official)
        out.classified += 1
        if not verdict.relevant:
            out.irrelevant += 1
            event_hash = before.event_hash if before else None
            out.updates[item.key] = Seen(item.content_hash, event_hash, day)
            continue
        previous = before.event_hash if before else None
        out.events.append(
            item_event(
                feed_url, item, verdict, baseline=baseline, previous=previous, official=official
            )
        )
        out.updates[item.key] = Seen(item.content_hash, item.content_hash, day)
    return out


def item_event(
    feed_url: str,
    item: Item,
    verdict: Classification,
    *,
    baseline: bool,
    previous: str | None,
    official: bool = False,
) -> Event:
    """``item.seen`` (or ``item.revised`` when an earlier version was an event).

    The id derives from feed URL, item key and content hash, so every watcher that
    sees this version of this item builds the same event.
    """
    data: ItemSeen = {
        "feed": feed_url,
        "source": item.source,
        "item_key": item.key,
        "url": item.url,
        "title": item.title,
        "summary": item.summary,
        "lang": item.lang,
        "published": item.published,
        "content_hash": item.content_hash,
        "baseline": baseline,
        "topics": list(verdict.topics),
        "facts": dict(verdict.facts),
    }
    if official:
        data["official"] = True
    if previous is not None and previous != item.content_hash:
        revised = ItemRevised(**data, previous_hash=previous)
        return Event.new("item.revised", revised, feed_url, item.key, item.content_hash)
    return Event.new("item.seen", data, feed_url, item.key, item.content_hash)


def change_job(event: Event) -> Job:
    """The job that hands an item event to the workers."""
    return Job.for_event(jobs.CHANGES, jobs.PROCESS_CHANGE, event)


def queue_save_seen(
    pipe: Any, keys: Keys, feed_url: str, updates: Mapping[str, Seen], stale: Sequence[bytes]
) -> None:
    """Queue on ``pipe``: remember ``updates`` and forget ``stale`` (from ``load_seen``)."""
    name = keys.feed_items(feed_url)
    if updates:
        pipe.hset(name, mapping={k: v.to_json() for k, v in updates.items()})
    if stale:
        pipe.hdel(name, *stale)

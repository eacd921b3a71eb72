"""The event log: one Redis Stream of immutable domain events.

Envelope: ``id`` (stable, derived from the event's identity), ``type`` (dotted),
``v`` (schema version), ``at`` (UTC ISO-8601) and ``data`` (a JSON object).

Appending is idempotent: an id already in the log is not appended again. The
RQ job that processes an event is enqueued in the same MULTI/EXEC as the XADD,
guarded by WATCH on the event's index key, so there is never an event without
its job nor a job without its event, and a crashed-and-retried append cannot
double either.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from redis import Redis
from redis.exceptions import WatchError
from rq import Queue, Retry
from rq.serializers import JSONSerializer

from sorawatch import clock
from sorawatch.errors import EventError
from sorawatch.keys import Keys
from sorawatch.store import text


@dataclass(frozen=True, slots=True)
class EventType:
    """A registered event type: its current version and the data keys it needs."""

    name: str
    version: int
    required: tuple[str, ...]


REGISTRY: dict[str, EventType] = {}

# The typed data of each type is in `sorawatch.event_data` (its `DATA` maps type → TypedDict).
T = TypeVar("T")


def register(name: str, version: int = 1, required: Iterable[str] = ()) -> EventType:
    """Add an event type to the registry (idempotent for the same definition)."""
    kind = EventType(name, version, tuple(required))
    existing = REGISTRY.get(name)
    if existing is not None and existing != kind:
        raise EventError(f"{name}: registered twice with different definitions")
    REGISTRY[name] = kind
    return kind


_ITEM = ("feed", "source", "item_key", "url", "title", "summary", "lang", "published",
         "content_hash", "baseline", "topics", "facts")  # fmt: skip
register("item.seen", 1, _ITEM)
register("item.revised", 1, (*_ITEM, "previous_hash"))
register("story.merged", 1, ("item_event", "story", "level"))
register("story.started", 1, ("item_event", "story"))
register("state.changed", 1, ("topic", "before", "after", "since"))
register("change.reported", 1, ("claim", "topic", "key", "after", "since"))
register("alert.raised", 1, ("alert_id", "topic", "kind", "story", "sources"))
register("delivery.succeeded", 1, ("alert_id", "channel", "results"))
register("delivery.failed", 1, ("alert_id", "channel", "results"))
register("delivery.abandoned", 1, ("alert_id", "channel", "results"))
register("delivery.retried", 1, ("alert_id", "channel", "recipients"))
register("subscriber.requested", 1, ("email", "lang", "topics", "kinds"))
register("subscriber.confirmed", 1, ("email",))
register("subscriber.unsubscribed", 1, ("email",))
register("subscriber.updated", 1, ("email",))
register("subscriber.tokens_revoked", 1, ("email", "revoked_at"))
register("webhook.registered", 1, ("webhook_id", "url", "lang", "topics", "kinds"))
register("webhook.disabled", 1, ("webhook_id", "reason"))
register("webhook.enabled", 1, ("webhook_id",))
register("webhook.removed", 1, ("webhook_id",))


def utcnow() -> str:
    """Now by the one clock (``sorawatch.clock``: real, or fixed by ``SORAWATCH_NOW``)."""
    return clock.iso()


def event_id(type_: str, *parts: Any) -> str:
    """A stable id from an event's identity: the same parts give the same id."""
    raw = json.dumps([type_, *parts], ensure_ascii=False, sort_keys=True, default=str)
    return f"{type_}:{hashlib.sha256(raw.encode('utf-8')).hexdigest()[:32]}"


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    type: str
    data: dict[str, Any]
    v: int = 1
    at: str = field(default_factory=utcnow)

    @classmethod
    def new(
        cls, type_: str, data: Mapping[str, Any], *identity: Any, at: str | None = None
    ) -> Event:
        """A validated event of a registered type; its id derives from ``identity``
        (or from the data itself when no identity is given).

        ``data`` is typically one of `sorawatch.event_data`'s TypedDicts (a plain dict
        at run time); it is kept as given, not copied.
        """
        kind = REGISTRY.get(type_)
        if kind is None:
            raise EventError(f"{type_}: unknown event type")
        event = cls(
            id=event_id(type_, *(identity or (data,))),
            type=type_,
            data=cast(dict[str, Any], data),
            v=kind.version,
            at=at or utcnow(),
        )
        event.validate()
        return event

    def data_as(self, kind: Callable[..., T]) -> T:
        """The data as ``kind``, the TypedDict of this event's type (see
        `sorawatch.event_data`), so mypy checks the keys a reader uses.

        A cast, not a conversion: the log is the source of truth, and `validate` has
        already checked the keys every version of the type carries. (``kind`` is typed
        as a callable because mypy does not take a TypedDict class for ``type[T]``.)
        """
        return cast(T, self.data)

    def validate(self) -> None:
        """Raise EventError if the type is unknown or data lacks a required key."""
        kind = REGISTRY.get(self.type)
        if kind is None:
            raise EventError(f"{self.type}: unknown event type (event {self.id})")
        if not isinstance(self.data, dict):
            raise EventError(f"{self.type}: data must be an object (event {self.id})")
        if self.v > kind.version or self.v < 1:
            raise EventError(f"{self.type}: unknown version {self.v} (event {self.id})")
        missing = [k for k in kind.required if k not in self.data]
        if missing and self.v == kind.version:
            raise EventError(f"{self.type}: data lacks {', '.join(missing)} (event {self.id})")

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "v": self.v, "at": self.at, "data": self.data}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Event:
        try:
            event = cls(
                id=raw["id"], type=raw["type"], data=raw["data"], v=int(raw["v"]), at=raw["at"]
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise EventError(f"malformed event envelope: {exc}") from None
        event.validate()
        return event

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Event:
        try:
            return cls.from_dict(json.loads(raw))
        except json.JSONDecodeError as exc:
            raise EventError(f"event is not JSON: {exc}") from None


@dataclass(frozen=True, slots=True)
class Job:
    """An RQ job to enqueue with an event: a dotted function path and plain args."""

    queue: str
    func: str
    args: tuple[Any, ...]
    job_id: str
    timeout: int = 600

    @classmethod
    def for_event(cls, queue: str, func: str, event: Event, *args: Any) -> Job:
        """The job that processes ``event``: its id derives from the event id."""
        return cls(queue, func, (event.id, *args), job_id(queue, event.id))


def job_id(*parts: str) -> str:
    """An RQ-safe job id (letters, digits, ``_`` and ``-``) derived from ``parts``."""
    return "-".join(re.sub(r"[^A-Za-z0-9_-]", "_", p) for p in parts)


@dataclass(frozen=True, slots=True)
class Appended:
    event: Event
    stream_id: str
    new: bool


class _DeploymentQueue(Queue):
    """An RQ queue of one deployment: job ids get the deployment's prefix, because RQ
    keeps jobs under one global namespace and ids derive from event ids, which two
    deployments watching the same feed share."""

    job_prefix = ""

    def create_job(self, *args: Any, **kwargs: Any) -> Any:
        jid = kwargs.get("job_id")
        if jid and not str(jid).startswith(self.job_prefix):
            kwargs["job_id"] = f"{self.job_prefix}{jid}"
        return super().create_job(*args, **kwargs)


def queue(name: str, redis: Redis, keys: Keys | None = None) -> Queue:
    """The RQ queue ``name`` of the deployment ``keys`` belongs to (its name and job ids
    carry the Redis prefix; without ``keys``, the default prefix), with the JSON
    serializer (jobs carry ids and plain values)."""
    keys = keys or Keys()
    q = _DeploymentQueue(keys.queue(name), connection=redis, serializer=JSONSerializer)
    q.job_prefix = keys.job_prefix
    return q


def enqueue(redis: Redis, keys: Keys, pipe: Any, job: Job) -> None:
    """Put ``job`` on its queue inside the caller's MULTI pipeline.

    The queue reads the server version on ``redis`` (cached there), never inside
    the transaction.
    """
    q = queue(job.queue, redis, keys)
    q.get_redis_server_version()
    q.enqueue_call(
        job.func,
        args=job.args,
        job_id=job.job_id,
        timeout=job.timeout,
        result_ttl=3600,
        failure_ttl=7 * 86400,
        # A job whose worker was SIGKILLed is re-run by RQ's registry cleanup only if it
        # has retries left; event jobs are idempotent (event ids, locks), so re-runs are safe.
        retry=Retry(max=3),
        pipeline=pipe,
    )


# XADD and the id index in one step, so no crash can leave an event unindexed.
_APPEND_LUA = """
local sid = redis.call('XADD', KEYS[1], '*', 'e', ARGV[1])
redis.call('SET', KEYS[2], sid)
redis.call('HINCRBY', KEYS[3], ARGV[2], 1)
return sid
"""


class EventLog:
    """Append to, read and follow the event log."""

    def __init__(self, redis: Redis, keys: Keys | None = None) -> None:
        self.redis = redis
        self.keys = keys or Keys()
        self._append_script = redis.register_script(_APPEND_LUA)

    def append(self, event: Event, jobs: Sequence[Job] = ()) -> Appended:
        """Append ``event`` unless its id is in the log, enqueueing ``jobs`` atomically with it.

        Returns the stream id and whether it was new. A duplicate is a return value,
        not an exception. Raises EventError for an invalid event.
        """
        return self.append_many([(event, jobs)])[0]

    def append_many(self, batch: Sequence[tuple[Event, Sequence[Job]]]) -> list[Appended]:
        """Append several events (each with its jobs) in one transaction, skipping known ids."""
        if not batch:
            return []
        for event, _ in batch:
            event.validate()
        index = [self.keys.event_index(e.id) for e, _ in batch]
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(*index)  # type: ignore[no-untyped-call]
                    known = [text(v) for v in pipe.mget(index)]
                    fresh: dict[int, None] = {}
                    ids_here: set[str] = set()
                    for i, (event, _) in enumerate(batch):
                        if known[i] is None and event.id not in ids_here:
                            ids_here.add(event.id)
                            fresh[i] = None
                    if not fresh:
                        pipe.reset()
                        return [
                            Appended(e, known[i] or "", False) for i, (e, _) in enumerate(batch)
                        ]
                    pipe.multi()
                    # Scripts first, so the first replies are the stream ids.
                    for i in fresh:
                        event = batch[i][0]
                        self._append_script(
                            keys=[self.keys.events, index[i], self.keys.metrics],
                            args=[event.to_json(), f"events_appended|type={event.type}"],
                            client=pipe,
                        )
                    for i in fresh:
                        for job in batch[i][1]:
                            enqueue(self.redis, self.keys, pipe, job)
                    replies = pipe.execute()
                    break
                except WatchError:
                    continue
        sids = {i: text(replies[n]) or "" for n, i in enumerate(fresh)}
        return [
            Appended(e, sids[i], True) if i in sids else Appended(e, known[i] or "", False)
            for i, (e, _) in enumerate(batch)
        ]

    def read(self, after: str = "0", count: int | None = None) -> Iterator[tuple[str, Event]]:
        """Events after stream id ``after``, oldest first."""
        page = 1000
        last = after
        remaining = count
        while remaining is None or remaining > 0:
            want = page if remaining is None else min(page, remaining)
            rows: Any = self.redis.xrange(
                self.keys.events, min=f"({last}" if last != "0" else "-", count=want
            )
            if not rows:
                return
            for sid, fields in rows:
                last = text(sid) or last
                yield last, Event.from_json(fields[b"e"])
            if remaining is not None:
                remaining -= len(rows)

    def follow(self, after: str = "$", block_ms: int = 5000) -> Iterator[tuple[str, Event]]:
        """Yield events as they are appended, forever."""
        last = after
        if last == "$":
            tail: Any = self.redis.xrevrange(self.keys.events, count=1)
            last = text(tail[0][0]) or "0" if tail else "0"
        while True:
            reply: Any = self.redis.xread({self.keys.events: last}, block=block_ms, count=500)
            for _stream, rows in reply or []:
                for sid, fields in rows:
                    last = text(sid) or last
                    yield last, Event.from_json(fields[b"e"])

    def count(self) -> int:
        return int(self.redis.xlen(self.keys.events))

    def get(self, event_id: str) -> Event | None:
        sid = text(self.redis.get(self.keys.event_index(event_id)))
        if sid is None:
            return None
        rows: Any = self.redis.xrange(self.keys.events, min=sid, max=sid)
        return Event.from_json(rows[0][1][b"e"]) if rows else None

    def contains(self, event_id: str) -> bool:
        return bool(self.redis.exists(self.keys.event_index(event_id)))

    def reindex(self) -> int:
        """Rebuild the id → stream-id index from the log alone; returns events indexed."""
        n = 0
        with self.redis.pipeline(transaction=False) as pipe:
            for sid, event in self.read():
                pipe.set(self.keys.event_index(event.id), sid)
                n += 1
                if n % 1000 == 0:
                    pipe.execute()
            pipe.execute()
        return n

"""Webhook endpoints, read from a projection of the ``webhook.*`` events (the commands
that write them are in ``sorawatch.commands.endpoints``).

Keys under ``keys.projection("webhooks")``: ``:w:<id>`` (the record as JSON) and
``:all`` (ids by creation time). Signing secrets live apart, in
``keys.webhook_secrets``: they never enter the event log, and replay leaves them be.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from redis import Redis

from sorawatch.event_data import WebhookDisabled, WebhookEnabled, WebhookRegistered, WebhookRemoved
from sorawatch.events import Event
from sorawatch.keys import Keys
from sorawatch.projections import handles
from sorawatch.projections._common import (
    dumps,
    epoch,
    loads,
    text,
)


@dataclass(frozen=True, slots=True)
class Webhook:
    id: str
    url: str
    lang: str
    topics: tuple[str, ...]
    kinds: tuple[str, ...]
    active: bool
    disabled_reason: str | None
    created_at: str
    failing_since: str | None = None

    def wants(self, topic: str, kind: str) -> bool:
        return self.active and topic in self.topics and kind in self.kinds

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Webhook:
        return cls(
            id=raw["id"],
            url=raw["url"],
            lang=raw["lang"],
            topics=tuple(raw["topics"]),
            kinds=tuple(raw["kinds"]),
            active=bool(raw["active"]),
            disabled_reason=raw.get("disabled_reason"),
            created_at=raw["created_at"],
            failing_since=raw.get("failing_since"),
        )


def _ns(keys: Keys) -> str:
    return keys.projection("webhooks")


# -- reads ------------------------------------------------------------------------


def get(redis: Redis, keys: Keys, webhook_id: str) -> Webhook | None:
    raw = loads(redis.get(f"{_ns(keys)}:w:{webhook_id}"))
    return Webhook.from_dict(raw) if raw else None


def record_key(keys: Keys, webhook_id: str) -> str:
    """Where a webhook's record is (for batch reads in one pipeline)."""
    return f"{_ns(keys)}:w:{webhook_id}"


def list_all(redis: Redis, keys: Keys) -> list[Webhook]:
    """Every registered webhook (active or disabled), oldest first."""
    ids = [text(i) for i in redis.zrange(f"{_ns(keys)}:all", 0, -1)]
    if not ids:
        return []
    rows = redis.mget([f"{_ns(keys)}:w:{i}" for i in ids])
    return [Webhook.from_dict(loads(r)) for r in rows if r is not None]


def count(redis: Redis, keys: Keys) -> int:
    return int(redis.zcard(f"{_ns(keys)}:all"))


def matching(redis: Redis, keys: Keys, topic: str, kind: str) -> list[str]:
    """Ids of active webhooks that want ``topic`` and ``kind``."""
    return [w.id for w in list_all(redis, keys) if w.wants(topic, kind)]


def secret(redis: Redis, keys: Keys, webhook_id: str) -> str:
    """The signing secret of a webhook; raises KeyError when there is none."""
    raw = redis.hget(keys.webhook_secrets, webhook_id)
    if raw is None:
        raise KeyError(webhook_id)
    return text(raw)


# -- projection -------------------------------------------------------------------


def _store(redis: Redis, keys: Keys, hook: Webhook, score: float | None = None) -> None:
    with redis.pipeline() as pipe:
        pipe.set(f"{_ns(keys)}:w:{hook.id}", dumps(hook.to_dict()))
        if score is not None:
            pipe.zadd(f"{_ns(keys)}:all", {hook.id: score}, nx=True)
        pipe.execute()


@handles("webhook.registered")
def _on_registered(redis: Redis, keys: Keys, event: Event) -> None:
    d = event.data_as(WebhookRegistered)
    hook = Webhook(
        id=d["webhook_id"], url=d["url"], lang=d["lang"], topics=tuple(d["topics"]),
        kinds=tuple(d["kinds"]), active=True, disabled_reason=None,
        created_at=d.get("created_at") or event.at,
    )  # fmt: skip
    _store(redis, keys, hook, epoch(hook.created_at))


@handles("webhook.disabled")
def _on_disabled(redis: Redis, keys: Keys, event: Event) -> None:
    d = event.data_as(WebhookDisabled)
    hook = get(redis, keys, d["webhook_id"])
    if hook is None:
        return
    changes = {"active": False, "disabled_reason": d["reason"]}
    failing_since = d.get("failing_since")
    if failing_since:
        changes["failing_since"] = failing_since
    _store(redis, keys, Webhook.from_dict({**hook.to_dict(), **changes}))


@handles("webhook.enabled")
def _on_enabled(redis: Redis, keys: Keys, event: Event) -> None:
    hook = get(redis, keys, event.data_as(WebhookEnabled)["webhook_id"])
    if hook is None:
        return
    changes = {"active": True, "disabled_reason": None, "failing_since": None}
    _store(redis, keys, Webhook.from_dict({**hook.to_dict(), **changes}))


@handles("webhook.removed")
def _on_removed(redis: Redis, keys: Keys, event: Event) -> None:
    webhook_id = event.data_as(WebhookRemoved)["webhook_id"]
    with redis.pipeline() as pipe:
        pipe.delete(f"{_ns(keys)}:w:{webhook_id}")
        pipe.zrem(f"{_ns(keys)}:all", webhook_id)
        pipe.execute()

"""Webhook endpoints: written as ``webhook.*`` events, read from a projection.

Keys under ``keys.projection("webhooks")``: ``:w:<id>`` (the record as JSON) and
``:all`` (ids by creation time). Signing secrets live apart, in
``keys.webhook_secrets``: they never enter the event log, and replay leaves them be.
"""

from __future__ import annotations

import base64
import re
import secrets as _random
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from redis import Redis

from sorawatch import clock, netguard
from sorawatch.errors import ValidationError
from sorawatch.event_data import WebhookDisabled, WebhookEnabled, WebhookRegistered, WebhookRemoved
from sorawatch.events import Event, EventLog, utcnow
from sorawatch.keys import Keys
from sorawatch.projections import apply, handles
from sorawatch.projections._common import (
    DEFAULT_KINDS,
    KINDS,
    TOPICS,
    choose,
    choose_lang,
    dumps,
    epoch,
    loads,
    text,
)

ALL_TOPICS = TOPICS
ALL_KINDS = DEFAULT_KINDS
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


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


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 24 random bytes."""
    return "whsec_" + base64.b64encode(_random.token_bytes(24)).decode("ascii")


def check_secret(secret: str) -> str:
    """A caller-given secret, checked to be ``whsec_`` + base64 of 24-64 bytes."""
    if not secret.startswith("whsec_"):
        raise ValidationError("secret: must start with whsec_")
    try:
        raw = base64.b64decode(secret[len("whsec_") :], validate=True)
    except ValueError:
        raise ValidationError("secret: the part after whsec_ must be base64") from None
    if not 24 <= len(raw) <= 64:
        raise ValidationError("secret: must encode 24 to 64 bytes")
    return secret


def check_url(url: str, allow_private: bool) -> str:
    """The URL, checked: http(s), a host, and (unless allowed) not inside the network.

    Raises ValidationError. The address check is ``sorawatch.netguard``'s.
    """
    value = (url or "").strip()
    if _CONTROL.search(value):
        # httpx refuses to send to such a URL (InvalidURL) at every delivery.
        raise ValidationError(f"url {url!r}: control characters are not allowed")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(f"url {url!r}: must be an http or https URL with a host")
    netguard.check_url(value, allow_private)
    return value


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


# -- writes -----------------------------------------------------------------------


def register(
    log: EventLog,
    url: str,
    secret: str | None = None,
    lang: str = "both",
    topics: Iterable[str] | str | None = ALL_TOPICS,
    kinds: Iterable[str] | str | None = ALL_KINDS,
    allow_private: bool = False,
) -> tuple[Webhook, str]:
    """Register an endpoint; returns it with its secret (generated when None).

    Raises ValidationError for a bad URL, secret, language, topic or kind, or a URL
    pointing inside the network, before anything is written. Stores the secret in
    the secret store, then appends ``webhook.registered`` (without the secret).
    """
    checked = check_url(url, allow_private)
    lang_ = choose_lang(lang)
    topics_ = choose(topics, TOPICS, "topic")
    kinds_ = choose(DEFAULT_KINDS if kinds is None else kinds, KINDS, "kind")
    key = check_secret(secret) if secret is not None else new_secret()
    webhook_id = "wh_" + _random.token_hex(12)
    now = utcnow()
    data: WebhookRegistered = {
        "webhook_id": webhook_id, "url": checked, "lang": lang_, "topics": list(topics_),
        "kinds": list(kinds_), "created_at": now,
    }  # fmt: skip
    # Secret first: a webhook in the log without its secret could not be signed for.
    log.redis.hset(log.keys.webhook_secrets, webhook_id, key)
    _write(log, Event.new("webhook.registered", data, webhook_id, at=now))
    hook = get(log.redis, log.keys, webhook_id)
    assert hook is not None
    return hook, key


def disable(
    log: EventLog, webhook_id: str, reason: str, failing_since: str | None = None
) -> Webhook | None:
    """Stop deliveries to an endpoint; None when unknown. Appends ``webhook.disabled``."""
    hook = get(log.redis, log.keys, webhook_id)
    if hook is None:
        return None
    if not hook.active and hook.disabled_reason == reason:
        return hook
    now = utcnow()
    data = WebhookDisabled(webhook_id=webhook_id, reason=reason, failing_since=failing_since)
    # Real time in the identity: disabling again is a new event even when the clock
    # stands still (SORAWATCH_NOW); the same in `enable` and in subscribers' `update`.
    _write(log, Event.new("webhook.disabled", data, webhook_id, clock.real_iso(), at=now))
    return get(log.redis, log.keys, webhook_id)


def enable(log: EventLog, webhook_id: str) -> Webhook | None:
    """Resume deliveries to an endpoint; None when unknown. Appends ``webhook.enabled``."""
    hook = get(log.redis, log.keys, webhook_id)
    if hook is None:
        return None
    if hook.active:
        return hook
    now = utcnow()
    data: WebhookEnabled = {"webhook_id": webhook_id}
    _write(log, Event.new("webhook.enabled", data, webhook_id, clock.real_iso(), at=now))
    return get(log.redis, log.keys, webhook_id)


def remove(log: EventLog, webhook_id: str) -> bool:
    """Delete an endpoint and its secret; False when unknown. Appends ``webhook.removed``."""
    if get(log.redis, log.keys, webhook_id) is None:
        return False
    _write(log, Event.new("webhook.removed", WebhookRemoved(webhook_id=webhook_id), webhook_id))
    log.redis.hdel(log.keys.webhook_secrets, webhook_id)
    return True


def _write(log: EventLog, event: Event) -> None:
    log.append(event)
    apply(log.redis, log.keys, event)


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

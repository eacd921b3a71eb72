"""Register, disable, enable, remove webhook endpoints: the commands that write
``webhook.*`` events (and apply them), and keep each endpoint's signing secret apart
from the log. The read model is ``sorawatch.projections.webhooks``.
"""

from __future__ import annotations

import base64
import re
import secrets as _random
from collections.abc import Iterable
from urllib.parse import urlsplit

from sorawatch import clock, netguard
from sorawatch.commands import write
from sorawatch.errors import ValidationError
from sorawatch.event_data import WebhookDisabled, WebhookEnabled, WebhookRegistered, WebhookRemoved
from sorawatch.events import Event, EventLog, utcnow
from sorawatch.projections._common import DEFAULT_KINDS, KINDS, TOPICS, choose, choose_lang
from sorawatch.projections.webhooks import Webhook, get

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


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


def register(
    log: EventLog,
    url: str,
    secret: str | None = None,
    lang: str = "both",
    topics: Iterable[str] | str | None = TOPICS,
    kinds: Iterable[str] | str | None = DEFAULT_KINDS,
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
    write(log, Event.new("webhook.registered", data, webhook_id, at=now))
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
    write(log, Event.new("webhook.disabled", data, webhook_id, clock.real_iso(), at=now))
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
    write(log, Event.new("webhook.enabled", data, webhook_id, clock.real_iso(), at=now))
    return get(log.redis, log.keys, webhook_id)


def remove(log: EventLog, webhook_id: str) -> bool:
    """Delete an endpoint and its secret; False when unknown. Appends ``webhook.removed``."""
    if get(log.redis, log.keys, webhook_id) is None:
        return False
    write(log, Event.new("webhook.removed", WebhookRemoved(webhook_id=webhook_id), webhook_id))
    log.redis.hdel(log.keys.webhook_secrets, webhook_id)
    return True

"""Pydantic models of the admin and ops API, so ``/openapi.json`` says exactly
what goes in and what comes out."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sorawatch.vocabulary import DEFAULT_KINDS, TOPICS, Cadence, Kind, SubscriberStatus, Topic
from sorawatch.vocabulary import LangChoice as Lang


class ErrorOut(BaseModel):
    error: str = Field(description="What was wrong, for a person to read.")


class HealthOut(BaseModel):
    status: Literal["ok", "failing"]
    checks: dict[str, str] = Field(description="Each check: `ok` or `failing: reason`.")


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        min_length=10,
        max_length=2000,
        pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s/?#@]+(/[^\s]*)?$",
        description="An http(s) URL to POST alerts to; it must resolve to a public address "
        "(unless webhooks.allow_private).",
    )
    secret: str | None = Field(
        default=None,
        min_length=24,
        max_length=200,
        pattern=r"^whsec_[A-Za-z0-9+/=]+$",
        description="A `whsec_` base64 secret; generated when omitted.",
    )
    lang: Lang = "both"
    topics: list[Topic] = Field(default_factory=lambda: list(TOPICS), min_length=1)
    kinds: list[Kind] = Field(default_factory=lambda: list(DEFAULT_KINDS), min_length=1)


class WebhookOut(BaseModel):
    id: str
    url: str
    lang: Lang
    topics: list[Topic]
    kinds: list[Kind]
    active: bool
    disabled_reason: str | None = None
    created_at: str | None = None
    failing_since: str | None = None


class WebhookCreated(WebhookOut):
    secret: str = Field(description="The signing secret. Shown once: it cannot be read again.")


class DisableIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="disabled by an administrator", min_length=1, max_length=500)


class Removed(BaseModel):
    removed: bool


class SubscriberOut(BaseModel):
    email: str
    lang: Lang
    topics: list[Topic]
    kinds: list[Kind]
    status: SubscriberStatus
    requested_at: str | None = None
    confirmed_at: str | None = None
    tokens_after: str | None = Field(
        default=None, description="Links signed before this time are refused (revoked)."
    )
    cadence: Cadence = "instant"
    tz: str = Field(default="UTC", description="IANA time zone of the digest hour.")
    hour: int = Field(default=8, ge=0, le=23, description="Hour of the digest (weekly: Mondays).")
    max_per_day: int = Field(
        default=10, ge=0, description="Instant: alerts a day before the rest wait (0: no cap)."
    )
    cadence_since: str | None = None


class SubscriberChange(BaseModel):
    """What an operator may change about a subscriber; absent fields stay as they are."""

    model_config = ConfigDict(extra="forbid")
    lang: Lang | None = None
    topics: list[Topic] | None = None
    kinds: list[Kind] | None = None
    cadence: Cadence | None = None
    tz: str | None = Field(default=None, max_length=64)
    hour: int | None = Field(default=None, ge=0, le=23)
    max_per_day: int | None = Field(default=None, ge=0, le=10_000)


class TokensRevoked(BaseModel):
    email: str
    revoked: bool = Field(description="False when the address is not in the log.")


class SubscriberPage(BaseModel):
    total: int = Field(ge=0)
    offset: int = Field(ge=0)
    limit: int = Field(ge=1)
    items: list[SubscriberOut]


class Unsubscribed(BaseModel):
    email: str
    unsubscribed: bool


class FeedOut(BaseModel):
    url: str
    name: str
    lang: Literal["ar", "en"] | None
    interval: int | None
    health: dict[str, Any] = Field(
        description="The watcher's health record for this feed (empty before its first poll)."
    )


class DeadLetterOut(BaseModel):
    id: str = Field(description="Stable id of this (alert, channel, recipient) delivery.")
    alert_id: str
    channel: Literal["email", "webhook"]
    recipient: str = Field(description="The address, or the webhook id.")
    error: str | None = None
    attempt: int | None = None
    permanent: bool = Field(default=False, description="Refused for good (no retry would help).")
    at: str | None = Field(default=None, description="When it was given up (ISO-8601 UTC).")
    webhook_id: str | None = None


class RetryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alert_id: str | None = Field(default=None, max_length=200, description="Only this alert.")
    channel: Literal["email", "webhook"] | None = Field(
        default=None, description="Only this channel."
    )


class RetryOut(BaseModel):
    retried: int = Field(ge=0, description="Dead letters put back on their queue.")


class ReplayOut(BaseModel):
    events: int = Field(ge=0, description="Events re-applied.")
    deleted_keys: int = Field(ge=0, description="Projection keys deleted first.")
    by_type: dict[str, int] = Field(description="Events re-applied, by type.")

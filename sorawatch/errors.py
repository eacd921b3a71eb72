"""The error tree: one root, branches that callers catch.

A message always says what was wrong and with which input (feed URL, setting key,
event type), so the person reading it knows where to look.
"""

from __future__ import annotations


class SorawatchError(Exception):
    """Root of every error sorawatch raises on purpose."""


class SettingsError(SorawatchError):
    """A setting is missing, unknown, of the wrong type or out of range."""


class LexiconError(SettingsError):
    """A product lexicon (rules as data) cannot be loaded."""


class EventError(SorawatchError):
    """An event is malformed or of an unknown type."""


class FeedError(SorawatchError):
    """A feed could not be polled; carries the feed URL."""

    def __init__(self, url: str, message: str, *, kind: str = "error") -> None:
        super().__init__(f"{url}: {message}")
        self.url = url
        self.reason = message
        self.kind = kind


class FetchError(FeedError):
    """The feed could not be fetched (network, HTTP status, size, redirects)."""

    def __init__(
        self,
        url: str,
        message: str,
        *,
        kind: str = "fetch",
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(url, message, kind=kind)
        self.retry_after = retry_after
        self.status = status


class ParseError(FeedError):
    """The body was fetched but is not a feed we can read."""

    def __init__(self, url: str, message: str) -> None:
        super().__init__(url, message, kind="parse")


class DeliveryError(SorawatchError):
    """A message could not be delivered to one recipient."""


class TransientDeliveryError(DeliveryError):
    """Worth retrying later (SMTP 4xx, HTTP 429/5xx, timeouts)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    """Retrying will not help (SMTP 5xx, HTTP 4xx, a refused address)."""


class ValidationError(SorawatchError):
    """A value given by a person (email, URL, language, topic) is not acceptable."""

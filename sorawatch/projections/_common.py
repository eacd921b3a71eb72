"""Small helpers the projection modules share: JSON in Redis, validation of choices."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from sorawatch.errors import ValidationError
from sorawatch.store import text
from sorawatch.vocabulary import DEFAULT_KINDS, KINDS, LANG_CHOICES, TOPICS

__all__ = ["DEFAULT_KINDS", "KINDS", "TOPICS", "text"]  # read here by the projections


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def loads(raw: bytes | str | None) -> Any:
    return None if raw is None else json.loads(raw)


def choose_lang(lang: str) -> str:
    """``lang`` checked against ar|en|both; raises ValidationError."""
    value = (lang or "").strip().lower()
    if value not in LANG_CHOICES:
        raise ValidationError(f"language {lang!r}: must be one of ar, en, both")
    return value


def choose(
    values: Iterable[str] | str | None, allowed: tuple[str, ...], what: str
) -> tuple[str, ...]:
    """A non-empty subset of ``allowed`` in canonical order (accepts "a,b" too); raises ValidationError."""
    if values is None:
        return allowed
    if isinstance(values, str):
        values = values.split(",")
    picked = {v.strip().lower() for v in values if v and v.strip()}
    unknown = sorted(picked - set(allowed))
    if unknown:
        raise ValidationError(f"{what} {', '.join(unknown)!r}: must be among {', '.join(allowed)}")
    if not picked:
        raise ValidationError(f"{what}: choose at least one of {', '.join(allowed)}")
    return tuple(v for v in allowed if v in picked)


def choose_request(
    email: str,
    lang: str,
    topics: Iterable[str] | str | None,
    kinds: Iterable[str] | str | None,
    normalize: Callable[[str], str],
) -> tuple[str, str, tuple[str, ...], tuple[str, ...]]:
    """A subscription's address (``normalize``d), language, topics and kinds, checked
    (ValidationError); early reports are opt-in, so no kinds means the default ones."""
    kinds_ = choose(DEFAULT_KINDS if kinds is None else kinds, KINDS, "kind")
    return normalize(email), choose_lang(lang), choose(topics, TOPICS, "topic"), kinds_


def epoch(iso: str | None) -> float:
    """Seconds since 1970 for an ISO-8601 time (naive means UTC); 0.0 when unreadable."""
    if not iso:
        return 0.0
    try:
        when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def iso(seconds: float) -> str:
    """The ISO-8601 UTC form of an epoch time, in the event log's style."""
    when = datetime.fromtimestamp(seconds, UTC)
    return when.isoformat(timespec="microseconds").replace("+00:00", "Z")

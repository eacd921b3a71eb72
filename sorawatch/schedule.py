"""When a subscriber hears: at once (``instant``), or in a digest ``daily`` or
``weekly`` at an hour of their own time zone; and, for instant subscribers, a cap
of mails a day past which the day's alerts wait for the next digest.

Pure functions of the subscriber's choices and an instant (the clock of
``sorawatch.clock``: a test plays two days in a few seconds). A period ends at a
*boundary*: the subscriber's hour, every day (daily) or every Monday (weekly),
counted on their wall clock, so 08:00 in Riyadh stays 08:00 across a change of
season elsewhere and 08:00 in Berlin stays 08:00 across its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sorawatch.errors import ValidationError
from sorawatch.vocabulary import CADENCES

DIGESTS = ("daily", "weekly")
MONDAY = 0
DEFAULT_TZ = "UTC"
DEFAULT_HOUR = 8
DEFAULT_MAX_PER_DAY = 10


@dataclass(frozen=True, slots=True)
class Schedule:
    """A subscriber's cadence. ``max_per_day`` 0 means no cap (instant only)."""

    cadence: str = "instant"
    tz: str = DEFAULT_TZ
    hour: int = DEFAULT_HOUR
    max_per_day: int = DEFAULT_MAX_PER_DAY

    @property
    def digest(self) -> bool:
        return self.cadence in DIGESTS

    def period(self) -> timedelta:
        """How far apart two boundaries are (held alerts of an instant subscriber
        wait for the next daily boundary)."""
        return timedelta(days=7 if self.cadence == "weekly" else 1)

    def last(self, now: datetime) -> datetime:
        """The latest boundary at or before ``now`` (UTC)."""
        local = now.astimezone(zone(self.tz))
        mark = local.replace(hour=self.hour, minute=0, second=0, microsecond=0)
        if self.cadence == "weekly":
            mark -= timedelta(days=(mark.weekday() - MONDAY) % 7)
        while _utc(mark) > now:
            mark -= self.period()  # wall-clock arithmetic: 08:00 stays 08:00
        return _utc(mark)

    def next(self, after: datetime) -> datetime:
        """The earliest boundary strictly after ``after`` (UTC)."""
        local = self.last(after).astimezone(zone(self.tz))
        mark = local + self.period()
        while _utc(mark) <= after:
            mark += self.period()
        return _utc(mark)

    def day_start(self, now: datetime) -> datetime:
        """The start (local midnight, in UTC) of the subscriber's calendar day at ``now``:
        the daily cap counts per day."""
        local = now.astimezone(zone(self.tz))
        return _utc(local.replace(hour=0, minute=0, second=0, microsecond=0))


def _utc(local: datetime) -> datetime:
    return local.astimezone(UTC)


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; raises ValidationError naming it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValidationError(
            f"time zone {name!r}: not an IANA time zone (e.g. UTC, Asia/Riyadh)"
        ) from None


def choose(
    cadence: str | None = None,
    tz: str | None = None,
    hour: int | str | None = None,
    max_per_day: int | str | None = None,
) -> dict[str, Any]:
    """The schedule choices given (None: not given), checked: a dict for an event's
    data. Raises ValidationError naming the bad value before anything is written."""
    out: dict[str, Any] = {}
    if cadence is not None:
        value = str(cadence).strip().lower()
        if value not in CADENCES:
            raise ValidationError(f"cadence {cadence!r}: must be one of {', '.join(CADENCES)}")
        out["cadence"] = value
    if tz is not None:
        out["tz"] = zone(str(tz).strip()).key
    if hour is not None:
        out["hour"] = _whole(hour, "hour", 0, 23)
    if max_per_day is not None:
        out["max_per_day"] = _whole(max_per_day, "max-per-day", 0, 10_000)
    return out


def _whole(value: int | str, name: str, low: int, high: int) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ValidationError(f"{name} {value!r}: must be a whole number") from None
    if not low <= number <= high:
        raise ValidationError(f"{name} {value!r}: must be between {low} and {high}")
    return number


def of(record: Mapping[str, Any]) -> Schedule:
    """The schedule in a subscriber record or event data (defaults for what is absent:
    subscribers from before cadences are instant, capped at the default)."""
    return Schedule(
        cadence=str(record.get("cadence") or "instant"),
        tz=str(record.get("tz") or DEFAULT_TZ),
        hour=int(record.get("hour", DEFAULT_HOUR)),
        max_per_day=int(record.get("max_per_day", DEFAULT_MAX_PER_DAY)),
    )

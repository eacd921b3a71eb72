"""The one clock that decisions and recorded instants read.

Unset, it is the real clock. Set (``now`` in the settings, ``SORAWATCH_NOW`` in the
environment), it stands still at that instant, so a replay of two years of news,
step by step, sees two years pass, and the same log with the same clock gives the
same decisions.

What follows it: the ``at`` of every event appended, when an item is first seen,
windows and age rules, ``raised_at``, the delivery ledger's instants, retry and
failure-streak times, dates in mail and the Atom feed.

What does not: anything that measures or waits in the real world (timeouts, sleeps,
leases, backoff waits, feed poll scheduling, RQ's own machinery), signed token
expiry and webhook signature timestamps (checked against the receiver's real clock),
and outbox file names. Those call ``time`` themselves.

It is a process-wide setting rather than a parameter threaded through every call:
each entry point (the CLI's context, the worker runtime) sets it once from the
settings it loaded, before any decision is made, and RQ's work horses inherit it.
"""

from __future__ import annotations

from datetime import UTC, datetime

_fixed: datetime | None = None


def use(instant: datetime | None) -> None:
    """Make ``instant`` this process's clock (``None``: the real clock)."""
    global _fixed
    if instant is not None and instant.tzinfo is None:
        raise ValueError("the clock needs an aware datetime")
    _fixed = instant.astimezone(UTC) if instant is not None else None


def fixed() -> datetime | None:
    """The fixed instant in use, or ``None`` when the clock is the real one."""
    return _fixed


def now() -> datetime:
    """The current instant, in UTC."""
    return _fixed if _fixed is not None else datetime.now(UTC)


def iso(when: datetime | None = None) -> str:
    """``when`` (default: now) the way the event log writes instants:
    ``2024-02-15T10:00:00.000000Z``."""
    value = (when or now()).astimezone(UTC)
    return value.isoformat(timespec="microseconds").replace("+00:00", "Z")


def timestamp() -> float:
    """Now, as seconds since the epoch."""
    return now().timestamp()


def day() -> int:
    """Now, as whole days since the epoch (UTC)."""
    return int(timestamp() // 86400)


def real_iso() -> str:
    """The real time, whatever the clock says: for ids that must differ between two
    actions a person takes (a re-subscribe) even when the clock stands still."""
    return iso(datetime.now(UTC))

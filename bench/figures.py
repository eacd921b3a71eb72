"""What the benches share to measure and report: a time budget, JSON-safe numbers,
medians and spreads, counters that settle, Redis memory, and the RESULT line."""

from __future__ import annotations

import json
import math
import statistics
import time
from typing import Any

from redis import Redis


class OutOfTime(Exception):
    """The bench's time budget ran out."""


class Budget:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = time.monotonic()

    def left(self) -> float:
        return self.seconds - (time.monotonic() - self.started)

    def need(self, seconds: float, what: str) -> None:
        if self.left() < seconds:
            raise OutOfTime(f"{what} would not fit in what is left ({max(self.left(), 0):.0f} s)")


def num(value: float | None, digits: int = 0) -> float | int | None:
    """A JSON-safe number: None for missing, NaN or infinite."""
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits) if digits else round(value)


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def spread(values: list[float], unit: str = "/s", fmt: str = ",.0f") -> str:
    if not values:
        return "n/a"
    lo, mid, hi = min(values), statistics.median(values), max(values)
    return f"median {mid:{fmt}}{unit}, spread {lo:{fmt}}-{hi:{fmt}}{unit} over {len(values)}"


def settled(count: Any, bound: float = 15.0) -> int:
    """``count()`` once it has stopped moving (sinks write their counters a little late)."""
    deadline = time.monotonic() + bound
    last = count()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = count()
        if now == last:
            return int(now)
        last = now
    return int(last)


def used_memory(redis: Redis) -> int:
    return int(redis.info("memory")["used_memory"])


def key_bytes(redis: Redis, pattern: str) -> int:
    """Bytes Redis holds for the keys matching ``pattern`` (MEMORY USAGE, all samples)."""
    total = 0
    for key in redis.scan_iter(match=pattern, count=1000):
        total += int(redis.memory_usage(key, samples=0) or 0)
    return total


def report(result: dict[str, Any], *, complete: bool, exact: bool | None) -> int:
    """Print ``RESULT {json}`` (null, never NaN) and return the exit code: 0 complete
    and exactly once, 1 a delivery missing or doubled, 2 the budget ran out."""
    print("RESULT " + json.dumps(result, allow_nan=False), flush=True)
    if not complete:
        return 2
    return 0 if exact else 1

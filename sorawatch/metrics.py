"""Operational counters kept in one Redis hash, shared by every process.

Metrics are chatter, not events: every poll, every 304, every delivery is
counted here, and ``/metrics`` renders the hash in Prometheus' text format.
Field names are ``name|label=value|label=value``.
"""

from __future__ import annotations

from typing import Any

from sorawatch.keys import Keys

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)


def field_name(name: str, **labels: str) -> str:
    return "|".join([name, *(f"{k}={v}" for k, v in sorted(labels.items()))])


def parse_field(field: str) -> tuple[str, dict[str, str]]:
    name, *pairs = field.split("|")
    return name, dict(p.split("=", 1) for p in pairs)


def incr(redis: Any, keys: Keys, name: str, amount: int = 1, **labels: str) -> None:
    """Add ``amount`` to a counter (``redis`` may be a pipeline)."""
    redis.hincrby(keys.metrics, field_name(name, **labels), amount)


def observe(redis: Any, keys: Keys, name: str, value: float, **labels: str) -> None:
    """Record one observation in a histogram (cumulative buckets, sum and count)."""
    for bound in LATENCY_BUCKETS:
        if value <= bound:
            redis.hincrby(keys.metrics, field_name(f"{name}_bucket", le=str(bound), **labels), 1)
    redis.hincrby(keys.metrics, field_name(f"{name}_bucket", le="+Inf", **labels), 1)
    redis.hincrbyfloat(keys.metrics, field_name(f"{name}_sum", **labels), value)
    redis.hincrby(keys.metrics, field_name(f"{name}_count", **labels), 1)


def read_all(redis: Any, keys: Keys) -> dict[str, float]:
    raw = redis.hgetall(keys.metrics)
    return {k.decode(): float(v) for k, v in raw.items()}

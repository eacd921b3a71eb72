"""Operations: ``/healthz`` and ``/metrics`` (Prometheus text format).

Metrics come from the shared Redis hash (``sorawatch.metrics``: counters and
histograms every process writes) plus live gauges read at scrape time: queue
depths and registries, subscribers and the event log's length.
"""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector, CollectorRegistry
from redis import Redis
from redis.exceptions import RedisError

from sorawatch import jobs, metrics
from sorawatch.events import queue
from sorawatch.keys import Keys
from sorawatch.web.models import HealthOut
from sorawatch.web.security import check_bearer

router = APIRouter(tags=["operations"])

QUEUES = jobs.queues()
HEALTH_TIMEOUT = 3.0
PREFIX = "sorawatch_"


@router.get(
    "/healthz",
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "a check failed"}},
)
async def healthz(request: Request) -> JSONResponse:
    """200 when every check passes, 503 naming the failing check otherwise.

    The ping gets a few seconds: the shared client retries a lost Redis for much
    longer, which is right for work and wrong for a probe.
    """
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(run_in_threadpool(request.app.state.redis.ping), HEALTH_TIMEOUT)
        checks["redis"] = "ok"
    except TimeoutError:
        checks["redis"] = f"failing: no answer within {HEALTH_TIMEOUT:g} s"
    except (RedisError, OSError) as exc:
        checks["redis"] = f"failing: {type(exc).__name__}: {exc}"[:300]
    ok = all(v == "ok" for v in checks.values())
    body = {"status": "ok" if ok else "failing", "checks": checks}
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
def metrics_text(request: Request) -> Response:
    """Every counter, histogram and live gauge, in Prometheus' text format 0.0.4.

    With ``web.metrics_token`` set, only for ``Authorization: Bearer <token>`` (401
    otherwise; failed attempts count against the client like admin logins)."""
    expected = request.app.state.settings.web.metrics_token
    if expected:
        check_bearer(request, expected, "metrics")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisCollector(request.app.state.redis, request.app.state.keys))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def _name(raw: str) -> str:
    return PREFIX + re.sub(r"[^a-zA-Z0-9_]", "_", raw)


class RedisCollector(Collector):
    """Builds the metric families from Redis at each scrape."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    def collect(self) -> Iterator[Metric]:
        yield from self._stored()
        yield from self._live()

    def _stored(self) -> Iterator[Metric]:
        values = metrics.read_all(self.redis, self.keys)
        plain: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
        hists: dict[str, dict[tuple[tuple[str, str], ...], dict[str, Any]]] = defaultdict(dict)
        names = {f.split("|", 1)[0] for f in values}
        for field, value in values.items():
            name, labels = metrics.parse_field(field)
            for suffix in ("_bucket", "_sum", "_count"):
                if name.endswith(suffix) and f"{name[: -len(suffix)]}_bucket" in names:
                    base = name[: -len(suffix)]
                    le = labels.pop("le", None)
                    series = hists[base].setdefault(
                        tuple(sorted(labels.items())), {"buckets": {}, "sum": 0.0}
                    )
                    if suffix == "_bucket" and le is not None:
                        series["buckets"][le] = value
                    elif suffix == "_sum":
                        series["sum"] = value
                    break
            else:
                plain[name].append((labels, value))
        for name, rows in sorted(plain.items()):
            label_names = sorted({k for labels, _ in rows for k in labels})
            family = CounterMetricFamily(
                _name(name.removesuffix("_total")), name, labels=label_names
            )
            for labels, value in rows:
                family.add_metric([labels.get(k, "") for k in label_names], value)
            yield family
        for name, series_by_labels in sorted(hists.items()):
            label_names = sorted({k for key in series_by_labels for k, _ in key})
            hfamily = HistogramMetricFamily(_name(name), name, labels=label_names)
            for key, series in series_by_labels.items():
                labels = dict(key)
                buckets = sorted(series["buckets"].items(), key=lambda kv: _bound(kv[0]))
                if not buckets or buckets[-1][0] != "+Inf":
                    continue
                hfamily.add_metric(
                    [labels.get(k, "") for k in label_names],
                    [(le, count) for le, count in buckets],
                    series["sum"],
                )
            yield hfamily

    def _live(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            _name("queue_jobs"), "RQ jobs by queue and state", labels=["queue", "state"]
        )
        for name in QUEUES:
            q = queue(name, self.redis, self.keys)
            depth.add_metric([name, "queued"], q.count)
            for state, registry in (
                ("started", q.started_job_registry),
                ("scheduled", q.scheduled_job_registry),
                ("deferred", q.deferred_job_registry),
                ("failed", q.failed_job_registry),
            ):
                depth.add_metric([name, state], registry.get_job_count(cleanup=False))
        yield depth
        events = GaugeMetricFamily(_name("event_log_length"), "events in the log")
        events.add_metric([], float(self.redis.xlen(self.keys.events)))
        yield events


def _bound(le: str) -> float:
    return float("inf") if le == "+Inf" else float(le)

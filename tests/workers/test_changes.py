"""Change processing through real RQ workers on a real Redis: one alert per event and kind."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from redis import Redis
from rq import SimpleWorker
from rq.serializers import JSONSerializer

from sorawatch.events import EventLog, event_id, queue
from sorawatch.keys import Keys
from sorawatch.projections import alerts, state, stories
from sorawatch.settings import Settings
from tests.workers.items import RELEASED, item, post
from workers import changes, runtime

REPO = Path(__file__).resolve().parents[2]


def days_ago(days: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat()


@pytest.fixture
def log(settings: Settings, redis: Redis) -> EventLog:
    runtime.configure(settings, redis)
    return EventLog(redis, Keys(settings.redis.prefix))


def work(redis: Redis) -> None:
    """Run the queued change jobs in this process, one at a time, setting fan-out jobs
    aside (fan-out is delivery's; we check it was enqueued, in ``fanned_out``)."""
    q = queue("changes", redis)
    worker = SimpleWorker([q], connection=redis, serializer=JSONSerializer)
    while True:
        for job in q.jobs:
            if job.func_name != "workers.jobs.process_change":
                q.remove(job.id)
                fanned_out.add(job.args[0])
        if not q.count:
            return
        worker.work(burst=True, max_jobs=1)


fanned_out: set[str] = set()


def raised(log: EventLog) -> Counter[tuple[str, str]]:
    return Counter(
        (e.data["topic"], e.data["kind"]) for _, e in log.read() if e.type == "alert.raised"
    )


def test_one_event_from_many_outlets_and_languages_raises_one_alert_per_kind(
    log: EventLog, redis: Redis
) -> None:
    title = "OpenAI releases Sora 2 video model to the public"
    summary = "The Sora 2 app is now available to everyone in the US and Canada, OpenAI said."
    first = item(1, title, summary=summary, facts=RELEASED, source="The Verge")
    post(log, first)
    work(redis)
    post(
        log,
        # the same URL from two more feeds
        item(2, title, summary=summary, url=first.data["url"], feed="http://127.0.0.1/b.xml"),
        item(3, title, summary=summary, url=first.data["url"], feed="http://127.0.0.1/c.xml"),
        # the same story copied by an aggregator, lightly edited
        item(4, title + " today", summary=summary, facts=RELEASED, source="Aggregator"),
        # the same event in other words
        item(5, "Sora 2 is out: anyone can now make videos with OpenAI's model",
             summary="A new release.", facts=RELEASED, source="TechCrunch"),
        # and in Arabic
        item(6, "أوبن إيه آي تطلق سورا 2 للجميع", summary="أصبح تطبيق سورا متاحاً",
             lang="ar", facts=RELEASED, source="عالم التقنية"),
    )  # fmt: skip
    work(redis)
    keys = log.keys
    assert raised(log) == {("status", "change"): 1, ("status", "news"): 1}
    merges = Counter(e.data["level"] for _, e in log.read() if e.type == "story.merged")
    assert merges == {"item": 2, "story": 1, "event": 2}
    assert stories.count(redis, keys) == 1
    story = stories.recent(redis, keys)[0]
    assert len(story["sources"]) == 6
    now = state.current(redis, keys)
    assert now["status"]["value"] == "released"
    assert now["status"]["version"] == "Sora 2"
    assert {e["publisher"] for e in now["status"]["evidence"]} >= {"The Verge", "عالم التقنية"}
    assert now["counts"] == {"items": 6, "stories": 1, "alerts": 2}
    # every alert went out with its fan-out job
    alert_events = [e.id for _, e in log.read() if e.type == "alert.raised"]
    assert set(alert_events) <= fanned_out


def test_repoll_and_rerun_raise_nothing_new(
    log: EventLog, redis: Redis, settings: Settings
) -> None:
    event = item(1, "OpenAI launches Sora 2", facts=RELEASED)
    post(log, event)
    work(redis)
    before = log.count()
    post(log, event)  # a re-poll appends nothing and enqueues nothing
    assert log.count() == before
    assert queue("changes", redis).count == 0
    # a re-run of the same job (RQ is at-least-once)
    outcome = changes.process(redis, log.keys, log, settings.workers, event.id)
    assert outcome == "done"
    assert log.count() == before
    assert raised(log) == {("status", "change"): 1, ("status", "news"): 1}


def test_rerun_after_a_crash_between_append_and_apply_applies_once(
    log: EventLog, redis: Redis, settings: Settings
) -> None:
    event = item(1, "OpenAI launches Sora 2", facts=RELEASED)
    log.append(event)
    batch = changes.decide(redis, log.keys, event, settings.workers, "2025-01-01T00:00:00Z")
    log.append_many(batch)  # ...and the worker dies before applying
    assert alerts.count(redis, log.keys) == 0
    assert changes.process(redis, log.keys, log, settings.workers, event.id) == "done"
    assert alerts.count(redis, log.keys) == 2
    assert state.current(redis, log.keys)["status"]["value"] == "released"


def test_baseline_and_old_items_fold_into_state_but_raise_nothing(
    log: EventLog, redis: Redis
) -> None:
    post(
        log,
        item(1, "Sora available in research preview", facts={"status": "research_preview"},
             baseline=True, published="2024-12-01T00:00:00Z"),
        item(2, "ChatGPT Plus includes Sora for $20 a month", baseline=True,
             facts={"pricing": [{"plan": "Plus", "amount": 20, "currency": "USD", "period": "month"}]}),
        item(3, "Sora's first Hollywood partner: Lionsgate", facts={"partners": ["Lionsgate"]},
             published="2020-01-01T00:00:00Z"),
    )  # fmt: skip
    work(redis)
    assert raised(log) == {}
    now = state.current(redis, log.keys)
    assert now["status"]["value"] == "research_preview"
    assert [p["plan"] for p in now["pricing"]] == ["Plus"]
    assert [p["name"] for p in now["partners"]] == ["Lionsgate"]
    # a fresh report of a real change does alert, with the state it changed from
    post(log, item(4, "Sora is now released to all", facts={"status": "released"}))
    work(redis)
    assert raised(log) == {("status", "change"): 1, ("status", "news"): 1}
    change = alerts.recent(redis, log.keys, topic="status")
    change_alert = next(a for a in change if a["kind"] == "change")
    assert change_alert["before"] == {"value": "research_preview", "version": None}
    assert change_alert["after"] == {"value": "released", "version": None}


def test_price_change_and_new_partner_alert_and_an_older_report_does_not_revert(
    log: EventLog, redis: Redis
) -> None:
    plus = {"plan": "Plus", "amount": 20, "currency": "USD", "period": "month"}
    post(log, item(1, "Sora in ChatGPT Plus at $20", facts={"pricing": [plus]}, baseline=True))
    work(redis)
    post(
        log,
        item(2, "OpenAI raises the Plus price to $25 with Sora 2",
             facts={"pricing": [{**plus, "amount": 25}]}, published=days_ago(2)),
        item(3, "Disney invests in OpenAI and licenses characters to Sora",
             facts={"partners": ["Disney"]}),
    )  # fmt: skip
    work(redis)
    assert raised(log) == {
        ("pricing", "change"): 1, ("pricing", "news"): 1,
        ("partnership", "change"): 1, ("partnership", "news"): 1,
    }  # fmt: skip
    price = next(
        a for a in alerts.recent(redis, log.keys, topic="pricing") if a["kind"] == "change"
    )
    assert price["before"]["amount"] == 20
    assert price["after"]["amount"] == 25
    # an article published before the change, seen later, does not turn the clock back
    post(
        log,
        item(4, "Back then: Plus cost $20", facts={"pricing": [plus]},
             published=days_ago(5)),
    )  # fmt: skip
    work(redis)
    assert [p["amount"] for p in state.pricing(redis, log.keys)] == [25]
    assert sum(raised(log).values()) == 4  # a copy of the baseline story: nothing new


def test_revised_item_with_new_facts_changes_state(log: EventLog, redis: Redis) -> None:
    first = item(1, "OpenAI to pause Sora", facts={"status": "announced"}, key="k1")
    post(log, first)
    work(redis)
    revised = item(
        1, "OpenAI pauses Sora sign-ups", facts={"status": "paused"}, key="k1",
        url=first.data["url"], revised_from=first.data["content_hash"],
    )  # fmt: skip
    post(log, revised)
    work(redis)
    assert state.status(redis, log.keys)["value"] == "paused"
    assert raised(log)[("status", "change")] == 2
    assert raised(log)[("status", "news")] == 1
    decision = log.get(event_id("story.merged", revised.id))
    assert decision is not None
    assert decision.data["level"] == "item"


_WORKER = """
import sys
from redis import Redis
from rq import SimpleWorker
from rq.serializers import JSONSerializer
from sorawatch.settings import load_settings
from workers import runtime
settings = load_settings()
redis = Redis.from_url(sys.argv[1])
rt = runtime.configure(settings, redis)
SimpleWorker([rt.keys.queue("changes")], connection=redis, serializer=JSONSerializer).work(burst=True)
"""


def test_two_worker_processes_on_one_queue_raise_one_alert_per_kind(
    log: EventLog, redis: Redis, redis_url: str, settings: Settings
) -> None:
    events = []
    for n in range(24):
        lang = "ar" if n % 3 == 0 else "en"
        title = (f"سورا 2 متاح الآن رسمياً - تقرير {n}" if lang == "ar"
                 else f"Report {n}: OpenAI's Sora 2 is officially released")  # fmt: skip
        facts = {**RELEASED, "partners": ["Disney"]}
        events.append(item(n, title, lang=lang, facts=facts, feed=f"http://127.0.0.1/{n % 5}.xml"))
    post(log, *events)
    env = {**os.environ, "SORAWATCH_REDIS_URL": redis_url,
           "SORAWATCH_REDIS_PREFIX": settings.redis.prefix,
           "SORAWATCH_DATA_DIR": str(settings.data_dir)}  # fmt: skip
    procs = [
        subprocess.Popen([sys.executable, "-c", _WORKER, redis_url], cwd=REPO, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(2)
    ]  # fmt: skip
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    assert raised(log) == {
        ("status", "change"): 1, ("status", "news"): 1,
        ("partnership", "change"): 1, ("partnership", "news"): 1,
    }  # fmt: skip
    assert stories.count_items(redis, log.keys) == 24
    decided = [e for _, e in log.read() if e.type in ("story.started", "story.merged")]
    assert len(decided) == 24

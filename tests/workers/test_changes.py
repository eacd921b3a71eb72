"""Change processing through real RQ workers on a real Redis: one story message per event."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from redis import Redis
from rq.serializers import JSONSerializer

from sorawatch.events import EventLog, event_id, queue
from sorawatch.keys import Keys
from sorawatch.projections import alerts, state, stories
from sorawatch.settings import Settings
from sorawatch.workers import changes, runtime
from sorawatch.workers.worker import BurstWorker
from tests.workers.items import RELEASED, item, post

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
    worker = BurstWorker([q], connection=redis, serializer=JSONSerializer)
    while True:
        for job in q.jobs:
            if job.func_name != "sorawatch.workers.jobs.process_change":
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


def test_one_event_from_many_outlets_is_confirmed_by_a_second_publisher_and_told_once(
    log: EventLog, redis: Redis
) -> None:
    title = "OpenAI releases Sora 2 video model to the public"
    summary = "The Sora 2 app is now available to everyone in the US and Canada, OpenAI said."
    first = item(1, title, summary=summary, facts=RELEASED, source="The Verge")
    post(log, first)
    work(redis)
    # one publisher: reported, not confirmed; only early subscribers hear of it
    assert raised(log) == {("status", "early"): 1}
    assert state.status(redis, log.keys) is None
    assert [r["after"]["value"] for r in state.reported(redis, log.keys)] == ["released"]
    post(
        log,
        # the same URL from two more feeds, and a syndicated copy from an aggregator
        item(2, title, summary=summary, url=first.data["url"], feed="http://127.0.0.1/b.xml",
             facts=RELEASED, source="The Verge"),
        item(3, title + " today", summary=summary, facts=RELEASED, source="Aggregator"),
    )  # fmt: skip
    work(redis)
    assert raised(log) == {("status", "early"): 1}  # copies confirm nothing
    post(
        log,
        # the same event in other words, by another publisher: confirmed
        item(4, "Sora 2 is out: anyone can now make videos with OpenAI's model",
             summary="A new release.", facts=RELEASED, source="TechCrunch"),
        # and in Arabic: a source, no message
        item(5, "أوبن إيه آي تطلق سورا 2 للجميع", summary="أصبح تطبيق سورا متاحاً",
             lang="ar", facts=RELEASED, source="عالم التقنية"),
    )  # fmt: skip
    work(redis)
    keys = log.keys
    assert raised(log) == {("status", "early"): 1, ("status", "story"): 1, ("status", "change"): 1}
    merges = Counter(e.data["level"] for _, e in log.read() if e.type == "story.merged")
    assert merges == {"item": 1, "story": 1, "event": 2}
    assert stories.count(redis, keys) == 1
    story_alert = next(a for a in alerts.recent(redis, keys) if a["kind"] == "story")
    assert story_alert["story"] == stories.recent(redis, keys)[0]["story"]
    assert story_alert["after"] == {"value": "released", "version": "Sora 2"}
    assert story_alert["want"] == {"email": "change", "webhook": "news"}
    publishers = {s["publisher"] for s in story_alert["sources"]}
    assert publishers >= {"The Verge", "TechCrunch", "عالم التقنية"}  # later copies too
    now = state.current(redis, keys)
    assert now["status"]["value"] == "released"
    assert now["status"]["version"] == "Sora 2"
    assert now["status"]["confirmed_by"] == "publishers"
    assert now["reported"] == []
    assert {e["publisher"] for e in now["status"]["evidence"]} >= {"The Verge", "TechCrunch"}
    alert_events = [e.id for _, e in log.read() if e.type == "alert.raised"]
    assert set(alert_events) <= fanned_out


def test_an_official_source_confirms_alone_with_every_change_in_one_message(
    log: EventLog, redis: Redis
) -> None:
    facts = {**RELEASED, "pricing": [{"plan": "ChatGPT Plus", "amount": 20, "currency": "USD",
             "period": "month"}], "partners": ["Disney"]}  # fmt: skip
    post(log, item(1, "Sora 2 is here", facts=facts, source="OpenAI News", official=True))
    work(redis)
    assert raised(log) == {
        ("status", "story"): 1,
        ("status", "change"): 1, ("pricing", "change"): 1, ("partnership", "change"): 1,
    }  # fmt: skip
    story_alert = next(a for a in alerts.recent(redis, log.keys) if a["kind"] == "story")
    assert story_alert["topics"] == ["status", "pricing", "partnership"]
    assert [c["topic"] for c in story_alert["changes"]] == ["status", "pricing", "partnership"]
    assert {c["confirmed_by"] for c in story_alert["changes"]} == {"official"}
    typed = [a for a in alerts.recent(redis, log.keys) if a["kind"] == "change"]
    assert all(a["want"] == {"webhook": "change"} for a in typed)  # webhooks only


def test_a_later_copy_that_adds_a_change_sends_one_update_and_no_more(
    log: EventLog, redis: Redis
) -> None:
    post(log, item(1, "Sora 2 is here", facts=RELEASED, official=True, source="OpenAI News"))
    work(redis)
    plus = {"plan": "ChatGPT Plus", "amount": 20, "currency": "USD", "period": "month"}
    pro = {"plan": "ChatGPT Pro", "amount": 200, "currency": "USD", "period": "month"}
    post(log, item(2, "Sora 2 released, in Plus", facts={**RELEASED, "pricing": [plus]},
                   official=True, source="OpenAI News"))  # fmt: skip
    work(redis)
    post(log, item(3, "Sora 2 released, and in Pro", facts={**RELEASED, "pricing": [pro]},
                   official=True, source="OpenAI News"))  # fmt: skip
    work(redis)
    kinds = Counter(a["kind"] for a in alerts.recent(redis, log.keys))
    assert kinds == {"story": 1, "update": 1, "change": 3}
    update = next(a for a in alerts.recent(redis, log.keys) if a["kind"] == "update")
    assert update["after"] == plus
    assert {p["plan"] for p in state.pricing(redis, log.keys)} == {"ChatGPT Plus", "ChatGPT Pro"}


def test_repoll_and_rerun_raise_nothing_new(
    log: EventLog, redis: Redis, settings: Settings
) -> None:
    event = item(1, "OpenAI launches Sora 2", facts=RELEASED, official=True)
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
    assert raised(log) == {("status", "story"): 1, ("status", "change"): 1}


def test_rerun_after_a_crash_between_append_and_apply_applies_once(
    log: EventLog, redis: Redis, settings: Settings
) -> None:
    event = item(1, "OpenAI launches Sora 2", facts=RELEASED, official=True)
    log.append(event)
    batch = changes.decide(redis, log.keys, event, settings.workers, "2025-01-01T00:00:00Z")
    log.append_many(batch)  # ...and the worker dies before applying
    assert alerts.count(redis, log.keys) == 0
    assert changes.process(redis, log.keys, log, settings.workers, event.id) == "done"
    assert alerts.count(redis, log.keys) == 2
    assert state.current(redis, log.keys)["status"]["value"] == "released"
    assert len(state.timeline(redis, log.keys)) == 1
    # The item's own projection too, as replay would build it.
    assert stories.count_items(redis, log.keys) == 1


def test_baseline_and_old_items_fold_into_state_but_raise_nothing(
    log: EventLog, redis: Redis
) -> None:
    plus = {"plan": "ChatGPT Plus", "amount": 20, "currency": "USD", "period": "month"}
    post(
        log,
        item(1, "Sora available in research preview", facts={"status": "research_preview"},
             baseline=True, published="2024-12-01T00:00:00Z", official=True),
        item(2, "ChatGPT Plus includes Sora for $20 a month", baseline=True,
             facts={"pricing": [plus]}, official=True),
        item(3, "Sora's first Hollywood partner: Lionsgate", facts={"partners": ["Lionsgate"]},
             published="2020-01-01T00:00:00Z", official=True),
    )  # fmt: skip
    work(redis)
    assert raised(log) == {}
    now = state.current(redis, log.keys)
    assert now["status"]["value"] == "research_preview"
    assert [p["plan"] for p in now["pricing"]] == ["ChatGPT Plus"]
    assert [p["name"] for p in now["partners"]] == ["Lionsgate"]
    # a fresh report of a real change does alert, with the state it changed from
    post(log, item(4, "Sora is now released to all", facts={"status": "released"}, official=True))
    work(redis)
    assert raised(log) == {("status", "story"): 1, ("status", "change"): 1}
    story_alert = next(a for a in alerts.recent(redis, log.keys) if a["kind"] == "story")
    assert story_alert["before"] == {"value": "research_preview", "version": "Sora"}
    assert story_alert["after"] == {"value": "released", "version": "Sora"}


def test_price_change_partner_end_and_an_older_report_does_not_revert(
    log: EventLog, redis: Redis
) -> None:
    plus = {"plan": "ChatGPT Plus", "amount": 20, "currency": "USD", "period": "month"}
    post(log, item(1, "Sora in ChatGPT Plus at $20", facts={"pricing": [plus]}, baseline=True,
                   official=True))  # fmt: skip
    work(redis)
    post(
        log,
        item(2, "OpenAI raises the Plus price to $25 with Sora 2",
             facts={"pricing": [{**plus, "amount": 25}]}, published=days_ago(2), official=True),
        item(3, "Disney invests in OpenAI and licenses characters to Sora",
             facts={"partners": ["Disney"]}, official=True),
    )  # fmt: skip
    work(redis)
    price = next(a for a in alerts.recent(redis, log.keys, topic="pricing") if a["kind"] == "story")
    assert price["before"]["amount"] == 20
    assert price["after"]["amount"] == 25
    # an article published before the change, seen later, does not turn the clock back
    post(log, item(4, "Back then: Plus cost $20", facts={"pricing": [plus]},
                   published=days_ago(5), official=True))  # fmt: skip
    work(redis)
    assert [p["amount"] for p in state.pricing(redis, log.keys)] == [25]
    # a partnership that ends is a change, shown with its until
    post(log, item(5, "Disney pulls out of its Sora deal", facts={"partners_ended": ["Disney"]},
                   official=True))  # fmt: skip
    work(redis)
    now = state.current(redis, log.keys)
    assert now["partners"] == []
    assert [p["name"] for p in now["ended"]["partners"]] == ["Disney"]
    assert now["ended"]["partners"][0]["until"]
    ended = next(
        a
        for a in alerts.recent(redis, log.keys, topic="partnership")
        if a["kind"] == "story" and a["after"]["active"] is False
    )
    assert ended["before"] == {"partner": "Disney", "active": True}


def test_revised_item_with_new_facts_changes_state(log: EventLog, redis: Redis) -> None:
    first = item(1, "OpenAI shows Sora", facts={"status": "announced"}, key="k1", official=True)
    post(log, first)
    work(redis)
    revised = item(
        1, "OpenAI opens Sora to artists", facts={"status": "limited_access"}, key="k1",
        url=first.data["url"], revised_from=first.data["content_hash"], official=True,
    )  # fmt: skip
    post(log, revised)
    work(redis)
    assert state.status(redis, log.keys)["value"] == "limited_access"
    assert Counter(a["kind"] for a in alerts.recent(redis, log.keys)) == {
        "story": 1,
        "update": 1,
        "change": 2,
    }
    decision = log.get(event_id("story.merged", revised.id))
    assert decision is not None
    assert decision.data["level"] == "item"


def test_shutdown_withdraws_plans_and_closes_the_timeline(log: EventLog, redis: Redis) -> None:
    plus = {"plan": "ChatGPT Plus", "amount": 20, "currency": "USD", "period": "month"}
    post(log, item(1, "Sora 2 is here", facts={**RELEASED, "pricing": [plus], "partners": ["Disney"]},
                   official=True))  # fmt: skip
    work(redis)
    post(log, item(2, "OpenAI shuts down Sora", facts={"status": "discontinued"}, official=True))
    work(redis)
    now = state.current(redis, log.keys)
    assert now["status"]["value"] == "discontinued"
    assert now["pricing"] == []
    assert [p["plan"] for p in now["ended"]["pricing"]] == ["ChatGPT Plus"]
    # a partnership ends only when a report says so
    assert [p["name"] for p in now["partners"]] == ["Disney"]
    # the timeline closes what the shutdown replaced
    status_entries = [e for e in now["timeline"] if e["topic"] == "status"]
    assert [e["after"]["value"] for e in status_entries] == ["discontinued", "released"]
    assert status_entries[0]["until"] is None
    assert status_entries[1]["until"] is not None


_WORKER = """
import sys
from redis import Redis
from sorawatch.workers.worker import BurstWorker
from rq.serializers import JSONSerializer
from sorawatch.settings import load_settings
from sorawatch.workers import runtime
settings = load_settings()
redis = Redis.from_url(sys.argv[1])
rt = runtime.configure(settings, redis)
BurstWorker([rt.keys.queue("changes")], connection=redis, serializer=JSONSerializer).work(burst=True)
"""


def test_two_worker_processes_on_one_queue_raise_one_story_message(
    log: EventLog, redis: Redis, redis_url: str, settings: Settings
) -> None:
    events = []
    for n in range(24):
        lang = "ar" if n % 3 == 0 else "en"
        title = (f"سورا 2 متاح الآن رسمياً - تقرير {n}" if lang == "ar"
                 else f"Report {n}: OpenAI's Sora 2 is officially released")  # fmt: skip
        facts = {**RELEASED, "partners": ["Disney"]}
        events.append(item(n, title, lang=lang, facts=facts, feed=f"http://127.0.0.1/{n % 5}.xml",
                           source=f"Outlet {n % 5}"))  # fmt: skip
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
        ("status", "early"): 1, ("status", "story"): 1,
        ("status", "change"): 1, ("partnership", "change"): 1,
    }  # fmt: skip
    assert stories.count_items(redis, log.keys) == 24
    decided = [e for _, e in log.read() if e.type in ("story.started", "story.merged")]
    assert len(decided) == 24

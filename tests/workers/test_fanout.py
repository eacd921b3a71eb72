"""Fan-out: the right recipients, in batches, once."""

from __future__ import annotations

import dataclasses
import json
import threading
from typing import Any

import pytest
from redis import Redis

from sorawatch.commands import endpoints, subscriptions
from sorawatch.events import EventLog, queue
from sorawatch.settings import Settings
from sorawatch.testing.alerts import raise_alert
from sorawatch.workers import fanout
from tests.workers.delivery_helpers import keys_of, setup_runtime, subscribe


def test_batches_of_the_configured_size_on_their_queues(redis: Redis, settings: Settings) -> None:
    settings = dataclasses.replace(
        settings, workers=dataclasses.replace(settings.workers, batch_size=4)
    )
    setup_runtime(settings, redis)
    log = EventLog(redis, keys_of(settings))
    wanted = [f"u{i:02d}@example.test" for i in range(10)]
    for address in wanted:
        subscribe(log, address, "en")
    subscribe(log, "status-only@example.test", "en", topics=["status"])
    subscribe(log, "pending@example.test", "en", confirmed=False)
    _, event = raise_alert(log)

    counts = fanout.fan_out(event.id)
    assert counts == {"email": 10, "webhook": 0}
    email_q = queue("email", redis)
    jobs = email_q.get_jobs()
    assert [len(j.args[1]) for j in jobs] == [4, 4, 2]
    assert sorted(a for j in jobs for a in j.args[1]) == wanted
    assert all(j.func_name == "sorawatch.workers.email.deliver_email" for j in jobs)
    assert all(j.args[0] == "al_test1" and j.args[2] == 0 for j in jobs)
    assert all(j.retries_left == 3 for j in jobs)  # RQ re-runs a batch whose worker died
    assert all((j.timeout or 0) >= settings.smtp.deadline for j in jobs)
    assert queue("webhook", redis).count == 0


def test_rerun_enqueues_nothing_even_when_subscribers_changed(
    redis: Redis, settings: Settings
) -> None:
    setup_runtime(settings, redis)
    log = EventLog(redis, keys_of(settings))
    subscribe(log, "a@example.test", "en")
    _, event = raise_alert(log)
    fanout.fan_out(event.id)
    subscribe(log, "b@example.test", "en")  # joined after the alert
    assert fanout.fan_out(event.id) == {"email": 0, "webhook": 0}
    jobs = queue("email", redis).get_jobs()
    assert [j.args[1] for j in jobs] == [["a@example.test"]]


def test_plan_is_written_once_and_reused(redis: Redis, settings: Settings) -> None:
    setup_runtime(settings, redis)
    log = EventLog(redis, keys_of(settings))
    subscribe(log, "a@example.test", "en")
    alert, _ = raise_alert(log)
    first = fanout.plan(redis, log.keys, alert, 250)
    subscribe(log, "b@example.test", "en")
    assert fanout.plan(redis, log.keys, alert, 250) == first
    stored = json.loads(redis.get(log.keys.fanout_plan("al_test1")) or b"{}")
    assert stored["email"] == [["a@example.test"]]


def test_concurrent_fan_outs_enqueue_each_batch_once(redis: Redis, settings: Settings) -> None:
    settings = dataclasses.replace(
        settings, workers=dataclasses.replace(settings.workers, batch_size=3)
    )
    setup_runtime(settings, redis)
    log = EventLog(redis, keys_of(settings))
    for i in range(20):
        subscribe(log, f"u{i:02d}@example.test", "both")
    alert, _ = raise_alert(log)
    results: list[dict[str, int]] = []

    def run() -> None:
        client = Redis.from_url(settings.redis.url or "")
        results.append(fanout.fan_out_alert(EventLog(client, log.keys), alert, settings))

    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r["email"] for r in results) == 20
    jobs = queue("email", redis).get_jobs()
    assert len(jobs) == 7
    assert len({j.id for j in jobs}) == 7


def test_a_connection_dropped_mid_transaction_is_not_taken_for_a_finished_fan_out(
    redis: Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """redis-py reports a connection lost between WATCH and EXEC (a Redis restart) as
    a WatchError, as it does a concurrent run's done mark: the alert must still go out."""
    setup_runtime(settings, redis)
    log = EventLog(redis, keys_of(settings))
    subscribe(log, "a@example.test", "en")
    _, event = raise_alert(log)
    enqueue = fanout.enqueue_delivery
    drops: list[int] = []

    def dropping(*args: Any, **kwargs: Any) -> None:
        if not drops:  # inside the first MULTI: every other connection is cut
            killer = Redis.from_url(settings.redis.url or "")
            drops.append(int(killer.client_kill_filter(_type="normal", skipme=True)))
            killer.close()
        enqueue(*args, **kwargs)

    monkeypatch.setattr(fanout, "enqueue_delivery", dropping)
    assert fanout.fan_out(event.id) == {"email": 1, "webhook": 0}
    assert len(drops) == 1
    assert drops[0] >= 1  # the fan-out's own connection was among those cut
    assert [j.args[1] for j in queue("email", redis).get_jobs()] == [["a@example.test"]]
    assert redis.exists(log.keys.fanout_done("al_test1"))


def test_baseline_alerts_reach_no_one(redis: Redis, settings: Settings) -> None:
    setup_runtime(settings, redis)
    log = EventLog(redis, keys_of(settings))
    subscribe(log, "a@example.test", "en")
    _, event = raise_alert(log, baseline=True)
    assert fanout.fan_out(event.id) == {"email": 0, "webhook": 0}
    assert queue("email", redis).count == 0


def test_chunks() -> None:
    assert list(fanout.chunks([[1, 2, 3], [4], [5, 6, 7, 8, 9]], 4)) == [
        [1, 2, 3, 4],
        [5, 6, 7, 8],
        [9],
    ]
    assert list(fanout.chunks([[]], 4)) == []


def test_a_story_reaches_each_recipient_once_and_early_reports_only_who_asked(
    redis: Redis, settings: Settings
) -> None:

    setup_runtime(settings, redis)
    log = EventLog(redis, keys_of(settings))
    keys = keys_of(settings)
    subscribe(log, "all@example.test", "en")
    subscribe(log, "status@example.test", "en", topics=["status"])
    subscribe(log, "partners@example.test", "en", topics=["partnership"])
    subscriptions.request(log, "early@example.test", "en", "status", "change,early", confirmed=True)
    typed, _ = endpoints.register(log, "http://127.0.0.1:9/c", kinds="change", allow_private=True)
    stories, _ = endpoints.register(log, "http://127.0.0.1:9/n", kinds="news", allow_private=True)
    story = {"alert_id": "al_s", "topic": "status", "kind": "story",
             "topics": ["status", "pricing"], "want": {"email": "change", "webhook": "news"}}  # fmt: skip
    plan = fanout.make_plan(redis, keys, story, 100)
    assert plan["email"] == [["all@example.test", "early@example.test", "status@example.test"]]
    assert plan["webhook"] == [[stories.id]]
    change = {
        "alert_id": "al_c",
        "topic": "pricing",
        "kind": "change",
        "want": {"webhook": "change"},
    }
    assert fanout.make_plan(redis, keys, change, 100) == {"email": [], "webhook": [[typed.id]]}
    early = {"alert_id": "al_e", "topic": "status", "kind": "early", "topics": ["status"],
             "want": {"email": "early"}}  # fmt: skip
    assert fanout.make_plan(redis, keys, early, 100) == {
        "email": [["early@example.test"]],
        "webhook": [],
    }

from __future__ import annotations

import threading

import pytest
from redis import Redis

from sorawatch.errors import EventError
from sorawatch.events import Event, EventLog, Job, job_id, queue


def _item(n: int = 1) -> Event:
    data = {
        "feed": "http://127.0.0.1/feed.xml", "source": "Test", "item_key": f"k{n}",
        "url": f"https://example.com/{n}", "title": "سورا متاح الآن", "summary": "",
        "lang": "ar", "published": None, "content_hash": f"h{n}", "baseline": False,
        "topics": ["status"], "facts": {"status": "released"},
    }  # fmt: skip
    return Event.new("item.seen", data, data["feed"], data["item_key"], data["content_hash"])


def _job(event: Event) -> Job:
    return Job.for_event("changes", "sorawatch.workers.changes.process", event)


def test_append_twice_leaves_one_event_and_one_job(redis: Redis) -> None:
    log = EventLog(redis)
    event = _item()
    first = log.append(event, [_job(event)])
    second = log.append(event, [_job(event)])
    assert first.new
    assert not second.new
    assert first.stream_id == second.stream_id
    assert log.count() == 1
    q = queue("changes", redis)
    assert q.count == 1
    job = q.jobs[0]
    assert job.id == "sw-" + job_id("changes", event.id)
    assert job.args == [event.id]


def test_concurrent_appends_of_the_same_event_append_once(redis_url: str, redis: Redis) -> None:
    events = [_item(n) for n in range(50)]

    def work() -> None:
        log = EventLog(Redis.from_url(redis_url))
        for e in events:
            log.append(e, [_job(e)])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert EventLog(redis).count() == 50
    assert queue("changes", redis).count == 50


def test_read_round_trips_the_envelope_and_keeps_arabic_readable(redis: Redis) -> None:
    log = EventLog(redis)
    event = _item()
    log.append(event)
    [(_sid, back)] = list(log.read())
    assert back == event
    assert log.get(event.id) == event
    raw = redis.xrange(log.keys.events)[0][1][b"e"].decode()
    assert "سورا" in raw


def test_batch_append_skips_known_and_repeated_ids(redis: Redis) -> None:
    log = EventLog(redis)
    a, b = _item(1), _item(2)
    log.append(a)
    out = log.append_many([(a, ()), (b, [_job(b)]), (b, [_job(b)])])
    assert [o.new for o in out] == [False, True, False]
    assert log.count() == 2
    assert queue("changes", redis).count == 1


def test_unknown_type_and_missing_data_are_errors() -> None:
    with pytest.raises(EventError, match="unknown event type"):
        Event.new("item.eaten", {})
    with pytest.raises(EventError, match="lacks"):
        Event.new("subscriber.confirmed", {})
    with pytest.raises(EventError, match="unknown event type"):
        Event.from_dict({"id": "x", "type": "nope", "v": 1, "at": "t", "data": {}})

"""A worker stops promptly: RQ's command-channel thread never holds it for a minute.

RQ stops a worker by sending UNSUBSCRIBE, then stopping and joining its pubsub thread.
When the thread reads the UNSUBSCRIBE reply before the stop flag is cleared, it goes
back to waiting for a message; with RQ's 60 s poll, ``work()`` returned a minute late
(a fan-out channel stalled ~60 s in most bench runs, bursts hung). These tests put the
thread in exactly that state, then wait for the stop with a generous bound.
"""

from __future__ import annotations

import threading
import time

from redis import Redis
from rq.serializers import JSONSerializer

from sorawatch.events import queue
from sorawatch.workers.worker import BurstWorker

BOUND = 30.0  # seconds: far above the 1 s poll, far below RQ's 60 s


def _wait(condition: object, bound: float = 10.0) -> bool:
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.01)
    return False


def test_worker_stops_after_its_thread_read_the_unsubscribe_reply(redis: Redis) -> None:
    worker = BurstWorker([queue("email", redis)], connection=redis, serializer=JSONSerializer)
    worker.subscribe()
    assert worker.pubsub is not None
    assert _wait(lambda: worker.pubsub.subscribed), "the subscription never came back"
    # The race, made certain: the thread consumes the UNSUBSCRIBE reply and waits again.
    worker.pubsub.unsubscribe()
    assert _wait(lambda: not worker.pubsub.subscribed), "the unsubscribe reply never came"
    stopped = threading.Event()

    def stop() -> None:
        worker.unsubscribe()
        stopped.set()

    threading.Thread(target=stop, daemon=True).start()
    assert stopped.wait(BOUND), "the worker waited out RQ's 60 s pubsub poll"

"""Polling: one feed end to end, and a pass over many with bounded concurrency.

One poll: take the feed's lease → conditional GET → parse → normalise →
compare with what we remembered → classify what changed → append the events
(with their jobs) → remember hashes and HTTP validators → record health and the
next due time → release the lease. The order matters: validators and the
"has succeeded" marker are written only after the events are appended, so a
crash in between makes the next poll fetch and append again (idempotently)
rather than skip what was never recorded.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from sorawatch import metrics
from sorawatch.errors import FeedError, FetchError
from sorawatch.events import EventLog
from sorawatch.keys import Keys
from sorawatch.settings import FeedSettings, Settings
from sorawatch.watcher.detect import (
    Classifier,
    Seen,
    change_job,
    detect,
    load_seen,
    queue_save_seen,
)
from sorawatch.watcher.fetch import FetchResult, Validators, fetch
from sorawatch.watcher.health import Lease, Schedule, jittered
from sorawatch.watcher.normalise import normalise
from sorawatch.watcher.parse import parse

log = logging.getLogger("sorawatch.watcher.poll")

APPEND_CHUNK = 200
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError)


@dataclass(frozen=True, slots=True)
class PollOutcome:
    """How one feed's poll went. ``outcome``: ok, not_modified, error or busy."""

    url: str
    name: str
    outcome: str
    items: int = 0
    events: int = 0
    baseline: bool = False
    error: str | None = None
    kind: str | None = None
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class PassSummary:
    """A pass over several feeds, for the one-line summary and the exit status."""

    outcomes: tuple[PollOutcome, ...]
    seconds: float

    def count(self, outcome: str) -> int:
        return sum(1 for o in self.outcomes if o.outcome == outcome)

    @property
    def items(self) -> int:
        return sum(o.items for o in self.outcomes)

    @property
    def events(self) -> int:
        return sum(o.events for o in self.outcomes)

    def line(self) -> str:
        return (
            f"feeds={len(self.outcomes)} ok={self.count('ok') + self.count('not_modified')} "
            f"(not_modified={self.count('not_modified')}) failed={self.count('error')} "
            f"busy={self.count('busy')} items={self.items} events={self.events} "
            f"seconds={self.seconds:.2f}"
        )


class Poller:
    """Polls feeds with the collaborators it is given (one per watcher process)."""

    def __init__(
        self,
        settings: Settings,
        redis: Redis,
        keys: Keys,
        client: httpx.Client,
        classifier: Classifier,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.keys = keys
        self.client = client
        self.classifier = classifier
        self.clock = clock
        self.rng = rng or random.Random()
        self.log = EventLog(redis, keys)
        self.schedule = Schedule(redis, keys)

    def poll(self, feed: FeedSettings, *, force: bool = False) -> PollOutcome:
        """Poll ``feed`` under its lease. With ``force`` it need not be due (``--once``).

        Returns ``busy`` when another watcher holds the lease. Feed errors are
        recorded in health and returned, never raised; a Redis outage is raised.
        """
        lease = self.schedule.claim_poll(
            feed.url, self.settings.watcher.lease, None if force else self.clock()
        )
        if lease is None:
            return PollOutcome(feed.url, feed.name, "busy")
        try:
            return self._poll(feed, lease)
        finally:
            if not lease.released:
                with contextlib.suppress(*REDIS_DOWN):  # the lease expires by itself
                    self.schedule.release(feed.url, lease.token)

    def _poll(self, feed: FeedSettings, lease: Lease) -> PollOutcome:
        started = time.monotonic()
        now = self.clock()
        try:
            return self._fetch_and_detect(feed, lease, now, started)
        except FeedError as exc:
            return self._failed(feed, now, started, exc)
        except REDIS_DOWN:
            raise
        except Exception as exc:  # a bug or a classifier failure: visible, and other feeds go on
            log.exception("feed %s: poll failed", feed.url)
            error = FeedError(
                feed.url, f"internal error: {type(exc).__name__}: {exc}", kind="internal"
            )
            return self._failed(feed, now, started, error)

    def _fetch_and_detect(
        self, feed: FeedSettings, lease: Lease, now: float, started: float
    ) -> PollOutcome:
        watcher = self.settings.watcher
        baseline = not lease.succeeded
        # Without a completed poll behind us, a 304 would leave nothing recorded.
        validators = None if baseline else Validators(lease.etag, lease.last_modified)
        result = fetch(self.client, feed.url, watcher, validators)
        if result.not_modified:
            self._succeeded(feed, lease, now, started, result, outcome="not_modified")
            return PollOutcome(
                feed.url, feed.name, "not_modified", seconds=time.monotonic() - started
            )
        parsed = parse(feed.url, result.body, result.headers)
        if parsed.warning:
            log.info("feed %s: not well-formed, read anyway: %s", feed.url, parsed.warning)
        items = [normalise(e, feed, parsed, result.final_url) for e in parsed.entries]
        memory = load_seen(self.redis, self.keys, feed.url, items)
        found = detect(
            feed.url, items, memory.seen, self.classifier, baseline=baseline,
            official=feed.trust == "official",
        )  # fmt: skip
        appended = 0
        for i in range(0, len(found.events), APPEND_CHUNK):
            chunk = found.events[i : i + APPEND_CHUNK]
            results = self.log.append_many([(e, [change_job(e)]) for e in chunk])
            appended += sum(1 for r in results if r.new)
        # Only now, with the events appended: item state, validators, health (in one MULTI).
        self._succeeded(
            feed, lease, now, started, result, outcome="ok", items=len(items), events=appended,
            seen=(found.updates, memory.stale),
        )  # fmt: skip
        if appended:
            log.info(
                "feed %s: %d items, %d new events%s",
                feed.url,
                len(items),
                appended,
                " (baseline)" if baseline else "",
            )
        return PollOutcome(
            feed.url,
            feed.name,
            "ok",
            items=len(items),
            events=appended,
            baseline=baseline,
            seconds=time.monotonic() - started,
        )

    def _succeeded(
        self,
        feed: FeedSettings,
        lease: Lease,
        now: float,
        started: float,
        result: FetchResult,
        *,
        outcome: str,
        items: int | None = None,
        events: int = 0,
        seen: tuple[dict[str, Seen], list[bytes]] | None = None,
    ) -> None:
        """Record a good poll and release the lease, in one round trip: item state and
        validators (after a 200), health, the next due time, metrics."""
        interval = feed.interval or self.settings.watcher.interval
        seconds = time.monotonic() - started
        with self.redis.pipeline(transaction=True) as pipe:
            if seen is not None:
                queue_save_seen(pipe, self.keys, feed.url, *seen)
                self._queue_validators(pipe, feed.url, result.validators)
                metrics.incr(pipe, self.keys, "items_parsed_total", items or 0)
            self.schedule.queue_success(
                pipe, feed, now=now, status=result.status, items=items, events=events,
                next_due=now + jittered(interval, self.settings.watcher.jitter, self.rng),
                seconds=seconds,
            )  # fmt: skip
            metrics.incr(pipe, self.keys, "polls_total", outcome=outcome)
            metrics.observe(pipe, self.keys, "poll_seconds", seconds)
            self.schedule.queue_release(pipe, lease)
            try:
                pipe.execute()
            except NoScriptError:  # Redis lost its scripts: all but the release was done
                self.schedule.release(feed.url, lease.token)
        lease.released = True

    def _failed(
        self, feed: FeedSettings, now: float, started: float, exc: FeedError
    ) -> PollOutcome:
        seconds = time.monotonic() - started
        status = exc.status if isinstance(exc, FetchError) else None
        retry_after = exc.retry_after if isinstance(exc, FetchError) else None
        failures = self.schedule.record_failure(
            feed,
            now=now,
            error=exc.reason,
            kind=exc.kind,
            status=status,
            seconds=seconds,
            retry_after=retry_after,
            settings=self.settings.watcher,
            rng=self.rng,
        )
        metrics.incr(self.redis, self.keys, "polls_total", outcome="error")
        metrics.incr(self.redis, self.keys, "fetch_errors_total", kind=exc.kind)
        log.warning("feed %s: %s (%s, failure %d)", feed.url, exc.reason, exc.kind, failures)
        return PollOutcome(
            feed.url, feed.name, "error", error=exc.reason, kind=exc.kind, seconds=seconds
        )

    def _queue_validators(self, pipe: Any, url: str, validators: Validators) -> None:
        key = self.keys.feed_validators(url)
        pipe.delete(key)
        kept: dict[Any, Any] = {
            k: v
            for k, v in (("etag", validators.etag), ("last_modified", validators.last_modified))
            if v
        }
        if kept:
            pipe.hset(key, mapping=kept)

    def run_pass(
        self,
        feeds: Sequence[FeedSettings],
        *,
        force: bool = False,
        stop: threading.Event | None = None,
    ) -> PassSummary:
        """Poll ``feeds`` with at most ``settings.watcher.concurrency`` at once.

        One feed's failure never stops the others. A feed not yet started when
        ``stop`` is set is skipped. Raises a Redis error after the pass if Redis
        was unreachable, so the caller can back off.
        """
        started = time.monotonic()
        if not feeds:
            return PassSummary((), 0.0)

        def one(feed: FeedSettings) -> PollOutcome | None:
            if stop is not None and stop.is_set():
                return None
            return self.poll(feed, force=force)

        workers = max(1, min(self.settings.watcher.concurrency, len(feeds)))
        outcomes: list[PollOutcome] = []
        outage: BaseException | None = None
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="poll") as pool:
            futures = [pool.submit(one, feed) for feed in feeds]
            for future in futures:
                try:
                    outcome = future.result()
                except REDIS_DOWN as exc:
                    outage = exc
                    continue
                if outcome is not None:
                    outcomes.append(outcome)
        if outage is not None:
            raise outage
        return PassSummary(tuple(outcomes), time.monotonic() - started)

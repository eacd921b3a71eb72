"""Feed health, leases and the due-time schedule, all operational state in Redis.

- Health: one hash per feed (last ok, last error and its kind, consecutive
  failures, next due, last status, items, last poll duration), shown by
  ``sorawatch feeds`` and the admin API.
- Leases: a feed is polled by one watcher at a time. ``claim`` takes the lease
  (SET NX PX with a random token) only if the feed is due, in one Lua script;
  ``release`` deletes it only for the token's owner.
- Schedule: ``keys.feeds_due`` is a sorted set of feed URL → due time (epoch
  seconds). Every pass takes all due feeds, most overdue first, so none starves.

Losing any of this loses no data: the next poll rebuilds it, and idempotent
appends keep a re-poll from doubling events.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis import Redis

from sorawatch.keys import Keys
from sorawatch.settings import FeedSettings, WatcherSettings
from sorawatch.store import text

_CLAIM_LUA = """
if ARGV[4] ~= 'any' then
  local due = redis.call('ZSCORE', KEYS[2], ARGV[3])
  if due and tonumber(due) > tonumber(ARGV[4]) then return 0 end
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""

# The claim with what a poll needs to start, in one round trip: whether the feed ever
# completed a poll (else this one is its baseline) and its HTTP validators.
_CLAIM_POLL_LUA = """
if ARGV[4] ~= 'any' then
  local due = redis.call('ZSCORE', KEYS[2], ARGV[3])
  if due and tonumber(due) > tonumber(ARGV[4]) then return {0} end
end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {0} end
local v = redis.call('HMGET', KEYS[4], 'etag', 'last_modified')
return {1, redis.call('HEXISTS', KEYS[3], 'first_ok'), v[1], v[2]}
"""

_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

ERROR_TEXT_MAX = 500


@dataclass(frozen=True, slots=True)
class FeedHealth:
    """What ``sorawatch feeds`` shows for one feed (times are UTC ISO-8601)."""

    url: str
    name: str
    last_ok: str | None = None
    last_poll: str | None = None
    last_error: str | None = None
    last_error_kind: str | None = None
    last_error_at: str | None = None
    failures: int = 0
    next_due: str | None = None
    last_status: int | None = None
    items_seen: int = 0
    events_total: int = 0
    last_poll_seconds: float | None = None
    first_ok: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(slots=True)
class Lease:
    """A feed's lease, taken by ``claim_poll``, with what the poll needs to start."""

    url: str
    token: str
    succeeded: bool  # a poll completed before, so this one is no baseline
    etag: str | None = None
    last_modified: str | None = None
    released: bool = False


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Schedule:
    """Leases, due times and health records for the feeds of one Redis prefix."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._claim = redis.register_script(_CLAIM_LUA)
        self._release = redis.register_script(_RELEASE_LUA)
        self._claim_poll = redis.register_script(_CLAIM_POLL_LUA)

    # -- the due set --
    def ensure(self, feeds: Iterable[FeedSettings], now: float) -> None:
        """Put feeds not yet scheduled on the due set, due now (ZADD NX keeps the rest)."""
        mapping = {feed.url: now for feed in feeds}
        if mapping:
            self.redis.zadd(self.keys.feeds_due, mapping, nx=True)

    def due(self, feeds: Iterable[FeedSettings], now: float) -> list[FeedSettings]:
        """The configured feeds due at ``now``, most overdue first."""
        by_url = {feed.url: feed for feed in feeds}
        raw: list[Any] = self.redis.zrangebyscore(self.keys.feeds_due, "-inf", now)
        urls = [text(u) for u in raw]
        return [by_url[u] for u in urls if u in by_url]

    def next_due(self, feeds: Iterable[FeedSettings]) -> float | None:
        """The earliest due time among ``feeds``, or None when none is scheduled."""
        urls = [feed.url for feed in feeds]
        if not urls:
            return None
        scores = self.redis.zmscore(self.keys.feeds_due, urls)
        known = [float(s) for s in scores if s is not None]
        return min(known) if len(known) == len(urls) else 0.0

    # -- leases --
    def claim(self, url: str, ttl: float, now: float | None = None) -> str | None:
        """Take the lease on ``url`` if it is free (and, given ``now``, the feed is due).

        Returns the lease token, or None when another watcher holds it.
        """
        token = secrets.token_hex(16)
        got = self._claim(
            keys=[self.keys.feed_lease(url), self.keys.feeds_due],
            args=[token, int(ttl * 1000), url, "any" if now is None else repr(now)],
        )
        return token if int(got) == 1 else None

    def claim_poll(self, url: str, ttl: float, now: float | None = None) -> Lease | None:
        """``claim``, and in the same round trip whether the feed ever succeeded and its
        validators (``keys.feed_validators``). None when another watcher holds the lease."""
        token = secrets.token_hex(16)
        reply: Any = self._claim_poll(
            keys=[
                self.keys.feed_lease(url),
                self.keys.feeds_due,
                self.keys.feed_health(url),
                self.keys.feed_validators(url),
            ],
            args=[token, int(ttl * 1000), url, "any" if now is None else repr(now)],
        )
        if int(reply[0]) != 1:
            return None
        etag, modified = [*reply[2:], None, None][:2]  # trailing nils may be dropped
        return Lease(url, token, bool(int(reply[1])), text(etag), text(modified))

    def release(self, url: str, token: str) -> bool:
        """Give the lease back; only its owner's token deletes it."""
        return int(self._release(keys=[self.keys.feed_lease(url)], args=[token])) == 1

    def queue_release(self, pipe: Any, lease: Lease) -> None:
        """Queue the release of ``lease`` on ``pipe`` (EVALSHA: the script must be loaded;
        ``release`` loads it, and is the fallback when the pipeline says NOSCRIPT)."""
        pipe.evalsha(self._release.sha, 1, self.keys.feed_lease(lease.url), lease.token)

    # -- health --
    def record_success(
        self,
        feed: FeedSettings,
        *,
        now: float,
        next_due: float,
        status: int,
        items: int | None,
        events: int,
        seconds: float,
    ) -> bool:
        """Record a good poll (200 or 304) and schedule the next one.

        Returns True when this was the feed's first successful poll ever. The
        marker is set with HSETNX after the poll's events are appended, so two
        watchers cannot both skip the baseline.
        """
        with self.redis.pipeline(transaction=True) as pipe:
            self.queue_success(
                pipe, feed, now=now, next_due=next_due, status=status, items=items,
                events=events, seconds=seconds,
            )  # fmt: skip
            first = pipe.execute()[0]
        return bool(first)

    def queue_success(
        self,
        pipe: Any,
        feed: FeedSettings,
        *,
        now: float,
        next_due: float,
        status: int,
        items: int | None,
        events: int,
        seconds: float,
    ) -> None:
        """Queue ``record_success``'s writes on the caller's MULTI ``pipe`` (its first
        reply is the HSETNX telling a first success)."""
        key = self.keys.feed_health(feed.url)
        pipe.hsetnx(key, "first_ok", iso(now))
        fields: dict[Any, Any] = {
            "url": feed.url,
            "name": feed.name,
            "last_ok": iso(now),
            "last_poll": iso(now),
            "failures": 0,
            "next_due": iso(next_due),
            "last_status": status,
            "last_poll_seconds": round(seconds, 3),
        }
        if items is not None:
            fields["items_seen"] = items
        pipe.hset(key, mapping=fields)
        pipe.hincrby(key, "events_total", events)
        pipe.zadd(self.keys.feeds_due, {feed.url: next_due})

    def record_failure(
        self,
        feed: FeedSettings,
        *,
        now: float,
        error: str,
        kind: str,
        status: int | None,
        seconds: float,
        retry_after: float | None,
        settings: WatcherSettings,
        rng: random.Random,
    ) -> int:
        """Record a failed poll and schedule a retry with backoff; returns the failure count."""
        key = self.keys.feed_health(feed.url)
        failures = int(self.redis.hincrby(key, "failures", 1))
        due = now + backoff(
            feed.interval or settings.interval, failures, settings, rng, retry_after=retry_after
        )
        fields: dict[Any, Any] = {
            "url": feed.url,
            "name": feed.name,
            "last_poll": iso(now),
            "last_error": error[:ERROR_TEXT_MAX],
            "last_error_kind": kind,
            "last_error_at": iso(now),
            "next_due": iso(due),
            "last_status": status if status is not None else "",
            "last_poll_seconds": round(seconds, 3),
        }
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=fields)
            pipe.zadd(self.keys.feeds_due, {feed.url: due})
            pipe.execute()
        return failures

    def has_succeeded(self, url: str) -> bool:
        """Whether the feed ever completed a successful poll (so this one is no baseline)."""
        return bool(self.redis.hexists(self.keys.feed_health(url), "first_ok"))

    def health(self, feed: FeedSettings) -> FeedHealth:
        """The recorded health of ``feed`` (defaults when it was never polled)."""
        raw = {
            text(k): text(v) for k, v in self.redis.hgetall(self.keys.feed_health(feed.url)).items()
        }
        return health_from(feed, raw)


def health_from(feed: FeedSettings, raw: Mapping[str, str | None]) -> FeedHealth:
    def num(name: str, kind: type = int) -> Any:
        value = raw.get(name)
        try:
            return kind(value) if value not in (None, "") else None
        except ValueError:
            return None

    return FeedHealth(
        url=feed.url,
        name=feed.name,
        last_ok=raw.get("last_ok"),
        last_poll=raw.get("last_poll"),
        last_error=raw.get("last_error"),
        last_error_kind=raw.get("last_error_kind"),
        last_error_at=raw.get("last_error_at"),
        failures=num("failures") or 0,
        next_due=raw.get("next_due"),
        last_status=num("last_status"),
        items_seen=num("items_seen") or 0,
        events_total=num("events_total") or 0,
        last_poll_seconds=num("last_poll_seconds", float),
        first_ok=raw.get("first_ok"),
    )


def jittered(seconds: float, jitter: float, rng: random.Random) -> float:
    """``seconds`` spread by ±``jitter`` (a fraction), so watchers do not poll in step."""
    return seconds * (1 + rng.uniform(-jitter, jitter)) if jitter else seconds


def backoff(
    interval: float,
    failures: int,
    settings: WatcherSettings,
    rng: random.Random,
    *,
    retry_after: float | None = None,
) -> float:
    """Seconds until the next try after ``failures`` consecutive failures.

    Doubles from a base of min(interval, 60 s) (a flaky feed is retried soon,
    a dead one rarely), capped at ``settings.max_backoff``; a server's
    Retry-After is honoured as a floor (within the same cap).
    """
    base = min(float(interval), 60.0)
    delay = jittered(base * 2 ** min(max(failures - 1, 0), 30), settings.jitter, rng)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, float(settings.max_backoff))

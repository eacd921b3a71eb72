"""The story index: which items were seen, which story each belongs to, and the
buckets the change worker searches for earlier copies.

Applied from ``item.seen`` / ``item.revised`` (counted) and from the worker's
decisions ``story.started`` (a new story) and ``story.merged`` (a later copy, with
``level`` item|story|event). Keys under ``keys.projection("stories")``:

- ``:items`` all item event ids; ``:all`` story ids by first-seen time;
- ``:s:<story>`` the story record (JSON: title, lang, url, facts, sources);
- ``:of:<item_event>`` the story an item was filed under;
- ``:url:<digest>`` / ``:key:<digest>`` the story of a canonical URL or item key;
- ``:lsh:<lang>:<bucket>`` indexed items by seen time, ``:tok:<item_event>`` their
  tokens (title and body), for the near-duplicate check;
- ``:fact:<digest of signature>`` stories asserting that fact, by seen time.

No key is compared against every story ever: candidates come from buckets and
fact sets, trimmed to the dedupe window by score.
"""

from __future__ import annotations

from typing import Any

from redis import Redis

from sorawatch.event_data import StoryFiled, StoryMerged, StoryStarted
from sorawatch.events import Event
from sorawatch.keys import Keys, digest
from sorawatch.projections import handles
from sorawatch.projections._common import dumps, epoch, loads, text
from sorawatch.projections.similarity import all_signatures, bands, tokens


def _ns(keys: Keys) -> str:
    return keys.projection("stories")


def url_key(keys: Keys, url: str) -> str:
    return f"{_ns(keys)}:url:{digest(url)}"


def item_key(keys: Keys, key: str) -> str:
    return f"{_ns(keys)}:key:{digest(key)}"


def bucket_key(keys: Keys, lang: str, bucket: str) -> str:
    return f"{_ns(keys)}:lsh:{lang}:{bucket}"


def fact_key(keys: Keys, signature: str) -> str:
    return f"{_ns(keys)}:fact:{digest(signature)}"


def tokens_key(keys: Keys, item_event: str) -> str:
    return f"{_ns(keys)}:tok:{item_event}"


# -- reads ------------------------------------------------------------------------


def get(redis: Redis, keys: Keys, story: str) -> dict[str, Any] | None:
    raw = loads(redis.get(f"{_ns(keys)}:s:{story}"))
    return raw if isinstance(raw, dict) else None


def story_of(redis: Redis, keys: Keys, item_event: str) -> str | None:
    """The story an item event was filed under, or None when not yet decided."""
    value = redis.get(f"{_ns(keys)}:of:{item_event}")
    return text(value) if value is not None else None


def count(redis: Redis, keys: Keys) -> int:
    return int(redis.zcard(f"{_ns(keys)}:all"))


def count_items(redis: Redis, keys: Keys) -> int:
    return int(redis.scard(f"{_ns(keys)}:items"))


def recent(redis: Redis, keys: Keys, limit: int = 50) -> list[dict[str, Any]]:
    ids = [text(i) for i in redis.zrevrange(f"{_ns(keys)}:all", 0, max(limit, 0) - 1)]
    rows = redis.mget([f"{_ns(keys)}:s:{i}" for i in ids]) if ids else []
    return [loads(r) for r in rows if r is not None]


# -- projection -------------------------------------------------------------------


@handles("item.seen", "item.revised")
def _on_item(redis: Redis, keys: Keys, event: Event) -> None:
    redis.sadd(f"{_ns(keys)}:items", event.id)


def _index(pipe: Any, keys: Keys, story: str, d: StoryFiled, score: float) -> None:
    """Point the item's URL, key, text buckets and facts at ``story``."""
    item = d["item_event"]
    pipe.set(f"{_ns(keys)}:of:{item}", story)
    url, key = d.get("url"), d.get("item_key")
    if url:
        pipe.set(url_key(keys, url), story, nx=True)
    if key:
        pipe.set(item_key(keys, key), story, nx=True)
    title_words = tokens(d.get("title"))
    body_words = tokens(d.get("title"), d.get("summary"))
    lang = d.get("lang") or "en"
    buckets = bands(title_words, "t") + bands(body_words, "b")
    if buckets:
        pipe.set(
            tokens_key(keys, item),
            dumps({"story": story, "title": sorted(title_words), "body": sorted(body_words)}),
        )
        for bucket in buckets:
            pipe.zadd(bucket_key(keys, lang, bucket), {item: score})
    for sig in all_signatures(d.get("facts")):
        pipe.zadd(fact_key(keys, sig), {story: score}, nx=True)


def _source(d: StoryFiled, level: str | None) -> dict[str, Any]:
    return {
        "item_event": d["item_event"], "url": d.get("url"), "title": d.get("title"),
        "publisher": d.get("source"), "lang": d.get("lang"), "published": d.get("published"),
        "level": level,
    }  # fmt: skip


@handles("story.started")
def _on_started(redis: Redis, keys: Keys, event: Event) -> None:
    d = event.data_as(StoryStarted)
    story = d["story"]
    score = epoch(d.get("seen_at") or event.at)
    record = {
        "story": story, "lang": d.get("lang"), "title": d.get("title"),
        "summary": d.get("summary"), "url": d.get("url"), "publisher": d.get("source"),
        "published": d.get("published"), "seen_at": d.get("seen_at") or event.at,
        "topics": d.get("topics") or [], "facts": d.get("facts") or {},
        "baseline": bool(d.get("baseline")), "sources": [_source(d, None)],
    }  # fmt: skip
    with redis.pipeline() as pipe:
        pipe.set(f"{_ns(keys)}:s:{story}", dumps(record), nx=True)
        pipe.zadd(f"{_ns(keys)}:all", {story: score}, nx=True)
        _index(pipe, keys, story, d, score)
        pipe.execute()


@handles("story.merged")
def _on_merged(redis: Redis, keys: Keys, event: Event) -> None:
    d = event.data_as(StoryMerged)
    story = d["story"]
    record = get(redis, keys, story)
    score = epoch(d.get("seen_at") or event.at)
    with redis.pipeline() as pipe:
        if record is not None and not any(
            s.get("item_event") == d["item_event"] for s in record["sources"]
        ):
            record["sources"].append(_source(d, d["level"]))
            pipe.set(f"{_ns(keys)}:s:{story}", dumps(record))
        _index(pipe, keys, story, d, score)
        pipe.execute()

"""Three levels of dedupe: is this item a later copy of a story already filed?

1. item: the same canonical URL or item key (across feeds) as an earlier item;
2. story: near-identical title and text, in the same language, within the window
   (token-set Jaccard ≥ 0.6 over title + summary, or ≥ 0.8 over titles of four
   words or more), candidates found through MinHash band buckets in Redis;
3. event: a story in either language, within the window, claiming one of the same
   facts (status value and version, plan and price, partner).

Each level reads the story index projection only; the caller records the answer
as a ``story.merged`` or ``story.started`` event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis import Redis

from sorawatch.event_data import ItemSeen
from sorawatch.keys import Keys
from sorawatch.projections import stories
from sorawatch.projections._common import loads, text
from sorawatch.projections.similarity import all_signatures, bands, jaccard, tokens

BODY_THRESHOLD = 0.6
TITLE_THRESHOLD = 0.8
TITLE_MIN_WORDS = 4
DAY = 86400.0


@dataclass(frozen=True, slots=True)
class Match:
    level: str  # item | story | event
    story: str


def same_item(redis: Redis, keys: Keys, url: str | None, item_key: str | None) -> str | None:
    """The story already holding this canonical URL or item key."""
    for key in ([stories.url_key(keys, url)] if url else []) + (
        [stories.item_key(keys, item_key)] if item_key else []
    ):
        found = redis.get(key)
        if found is not None:
            return text(found)
    return None


def same_story(
    redis: Redis, keys: Keys, data: ItemSeen, seen: float, window_days: int
) -> str | None:
    """The story, in the item's language and window, whose text is near-identical."""
    title_words = tokens(data.get("title"))
    body_words = tokens(data.get("title"), data.get("summary"))
    lang = data.get("lang") or "en"
    lo, hi = seen - window_days * DAY, seen + window_days * DAY
    candidates: set[str] = set()
    with redis.pipeline(transaction=False) as pipe:
        for bucket in bands(title_words, "t") + bands(body_words, "b"):
            pipe.zrangebyscore(stories.bucket_key(keys, lang, bucket), lo, hi)
        for rows in pipe.execute():
            candidates.update(text(r) for r in rows)
    if not candidates:
        return None
    ordered = sorted(candidates)
    raw = redis.mget([stories.tokens_key(keys, c) for c in ordered])
    best: tuple[float, str] | None = None
    for blob in raw:
        seen_item = loads(blob)
        if not seen_item:
            continue
        score = jaccard(body_words, seen_item["body"])
        title_score = jaccard(title_words, seen_item["title"])
        long_titles = min(len(title_words), len(seen_item["title"])) >= TITLE_MIN_WORDS
        if score >= BODY_THRESHOLD or (long_titles and title_score >= TITLE_THRESHOLD):
            rank = max(score, title_score)
            if best is None or rank > best[0] or (rank == best[0] and seen_item["story"] < best[1]):
                best = (rank, seen_item["story"])
    return best[1] if best else None


def same_event(
    redis: Redis, keys: Keys, facts: dict[str, Any] | None, seen: float, window_days: int
) -> str | None:
    """The earliest story in the window (any language) claiming any fact this one claims.

    Claims are what an item reports as new (the classifier keeps background apart), so
    two stories claiming one change within the window report one real-world event,
    even when one of them adds a price or a partner the other left out.
    """
    sigs = sorted(all_signatures(facts))
    if not sigs:
        return None
    lo, hi = seen - window_days * DAY, seen + window_days * DAY
    with redis.pipeline(transaction=False) as pipe:
        for sig in sigs:
            pipe.zrangebyscore(stories.fact_key(keys, sig), lo, hi, withscores=True)
        replies = pipe.execute()
    found: dict[str, float] = {text(m): float(s) for rows in replies for m, s in rows}
    if not found:
        return None
    return min(found.items(), key=lambda kv: (kv[1], kv[0]))[0]


def find(redis: Redis, keys: Keys, data: ItemSeen, seen: float, window_days: int) -> Match | None:
    """The first level at which the item is a copy of an earlier story, or None (new story)."""
    story = same_item(redis, keys, data.get("url"), data.get("item_key"))
    if story:
        return Match("item", story)
    story = same_story(redis, keys, data, seen, window_days)
    if story:
        return Match("story", story)
    story = same_event(redis, keys, data.get("facts"), seen, window_days)
    if story:
        return Match("event", story)
    return None

"""Replay rebuilds exactly what the live system built, from the log alone."""

from __future__ import annotations

from typing import Any

from click.testing import CliRunner
from redis import Redis

from sorawatch.cli.main import cli
from sorawatch.commands import endpoints, subscriptions
from sorawatch.events import EventLog
from sorawatch.keys import Keys
from sorawatch.projections import state
from sorawatch.projections.replay import replay
from sorawatch.settings import Settings
from sorawatch.workers import runtime
from tests.workers.items import RELEASED, item, post
from tests.workers.test_changes import work


def dump(redis: Redis, keys: Keys) -> dict[str, Any]:
    """Every projection key with its full value, whatever its type."""
    out: dict[str, Any] = {}
    for raw in sorted(redis.scan_iter(match=keys.projection("*"))):
        key = raw.decode()
        kind = redis.type(raw).decode()
        if kind == "string":
            out[key] = redis.get(raw)
        elif kind == "hash":
            out[key] = dict(sorted(redis.hgetall(raw).items()))
        elif kind == "set":
            out[key] = sorted(redis.smembers(raw))
        elif kind == "zset":
            out[key] = redis.zrange(raw, 0, -1, withscores=True)
        elif kind == "list":
            out[key] = redis.lrange(raw, 0, -1)
        else:
            out[key] = kind
    return out


def realistic_run(settings: Settings, redis: Redis) -> EventLog:
    runtime.configure(settings, redis)
    keys = Keys(settings.redis.prefix)
    log = EventLog(redis, keys)
    subscriptions.request(log, "a@example.com", "ar", "status,pricing", "change,news")
    subscriptions.confirm(log, "a@example.com")
    subscriptions.request(log, "b@example.com", "en", "partnership", confirmed=True)
    subscriptions.update(log, "b@example.com", lang="both")
    subscriptions.request(log, "c@example.com", "both", "status")
    subscriptions.unsubscribe(log, "c@example.com")
    subscriptions.request(log, "c@example.com", "en", "pricing")  # a re-subscribe
    hook, _ = endpoints.register(log, "http://127.0.0.1:9/a", allow_private=True)
    other, _ = endpoints.register(log, "http://127.0.0.1:9/b", allow_private=True)
    endpoints.disable(log, hook.id, "410 Gone")
    endpoints.remove(log, other.id)
    plus = {"plan": "Plus", "amount": 20, "currency": "USD", "period": "month"}
    post(
        log,
        item(1, "Sora in research preview", facts={"status": "research_preview"}, baseline=True,
             official=True),
        item(2, "ChatGPT Plus with Sora costs $20", facts={"pricing": [plus]}, baseline=True,
             official=True),
    )  # fmt: skip
    work(redis)
    post(
        log,
        item(3, "OpenAI releases Sora 2 to everyone", facts=RELEASED, source="Verge"),
        item(4, "OpenAI releases Sora 2 to everyone!", facts=RELEASED, source="Copy"),
        item(5, "سورا 2 متاح للجميع الآن", lang="ar", facts=RELEASED, source="عربي"),
        item(6, "Plus now $25", facts={"pricing": [{**plus, "amount": 25}]}, official=True),
        item(7, "Disney and OpenAI sign a Sora deal", facts={"partners": ["Disney", "Mattel"]},
             source="Deadline"),
        item(8, "Disney and OpenAI sign a Sora deal", url="https://news.example/7",
             feed="http://127.0.0.1/other.xml"),
        item(9, "A Sora deal for Disney, say the trades", facts={"partners": ["Disney", "Mattel"]},
             source="Variety"),
        item(10, "Mattel walks away from Sora", facts={"partners_ended": ["Mattel"]},
             official=True),
        item(11, "Sora 2 paused, one blog says", facts={"status": "paused"}, source="Blog"),
    )  # fmt: skip
    work(redis)
    return log


def test_replay_rebuilds_every_projection_key_exactly(settings: Settings, redis: Redis) -> None:
    log = realistic_run(settings, redis)
    keys = log.keys
    live = dump(redis, keys)
    live_state = state.current(redis, keys)
    assert live_state["counts"]["alerts"] >= 6
    assert live_state["status"]["value"] == "released"
    assert [p["name"] for p in live_state["partners"]] == ["Disney"]
    assert [p["name"] for p in live_state["ended"]["partners"]] == ["Mattel"]
    assert [r["after"]["value"] for r in live_state["reported"]] == ["paused"]
    assert len(live_state["timeline"]) >= 5
    # something to lose, and something that must survive (secrets are not projections)
    secrets_before = redis.hgetall(keys.webhook_secrets)
    redis.set(keys.projection("stories") + ":junk", "x")
    counts = replay(redis, keys, log)
    assert counts["events"] == log.count()
    assert dump(redis, keys) == live
    assert state.current(redis, keys) == live_state
    assert redis.hgetall(keys.webhook_secrets) == secrets_before
    # and from nothing at all
    redis.delete(*redis.keys(keys.projection("*")))
    assert state.current(redis, keys)["status"] is None
    replay(redis, keys, log)
    assert dump(redis, keys) == live


def test_cli_state_and_replay(settings: Settings, redis: Redis, redis_url: str) -> None:
    realistic_run(settings, redis)
    env = {"SORAWATCH_REDIS_URL": redis_url, "SORAWATCH_CONFIG": "",
           "SORAWATCH_DATA_DIR": str(settings.data_dir)}  # fmt: skip
    runner = CliRunner()
    human = runner.invoke(cli, ["state"], env=env, catch_exceptions=False)
    assert human.exit_code == 0, human.output
    assert "Status: released (Sora 2)" in human.output
    assert "Disney" in human.output
    assert "عربي" in human.output
    as_json = runner.invoke(cli, ["state", "--json"], env=env, catch_exceptions=False)
    assert '"value": "released"' in as_json.output
    result = runner.invoke(cli, ["replay"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "replay:" in result.output  # progress (stderr is mixed in by CliRunner)
    again = runner.invoke(cli, ["state", "--json"], env=env, catch_exceptions=False)
    assert again.output == as_json.output

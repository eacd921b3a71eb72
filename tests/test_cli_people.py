"""`sorawatch subscribe / unsubscribe / webhook` against a real Redis."""

from __future__ import annotations

import pytest
from click.testing import CliRunner, Result
from redis import Redis
from standardwebhooks import Webhook as Verifier

from sorawatch.cli.main import cli
from sorawatch.commands import endpoints
from sorawatch.events import EventLog
from sorawatch.keys import Keys
from sorawatch.projections import subscribers, webhooks


@pytest.fixture
def run(redis_url: str, redis: Redis, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    env = {"SORAWATCH_REDIS_URL": redis_url, "SORAWATCH_CONFIG": "",
           "SORAWATCH_DATA_DIR": str(tmp_path_factory.mktemp("data")),
           "SORAWATCH_WEBHOOKS_ALLOW_PRIVATE": "true"}  # fmt: skip

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)

    return invoke


def test_subscribe_pending_then_confirmed_and_unsubscribe(run, redis: Redis) -> None:  # type: ignore[no-untyped-def]
    result = run("subscribe", "Reader@Example.com", "--lang", "ar", "--topics", "status,pricing")
    assert result.exit_code == 0, result.output
    keys = Keys()
    sub = subscribers.get(redis, keys, "reader@example.com")
    assert sub is not None
    assert sub.status == "pending"
    assert sub.topics == ("status", "pricing")
    assert list(subscribers.matching(redis, keys, "status", "news")) == []
    result = run("subscribe", "reader@example.com", "--lang", "both", "--topics", "status",
                 "--kinds", "change", "--confirmed")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert list(subscribers.matching(redis, keys, "status", "change")) == [["reader@example.com"]]
    assert list(subscribers.matching(redis, keys, "status", "news")) == []
    assert run("unsubscribe", "reader@example.com").exit_code == 0
    assert list(subscribers.matching(redis, keys, "status", "change")) == []
    assert run("unsubscribe", "reader@example.com").exit_code == 1


@pytest.mark.parametrize(
    "args",
    [
        ("not-an-email", "--lang", "en", "--topics", "status"),
        ("a@example.com", "--lang", "fr", "--topics", "status"),
        ("a@example.com", "--lang", "en", "--topics", "status,weather"),
        ("a@example.com", "--lang", "en", "--topics", "status", "--kinds", "gossip"),
        ("a@example.com", "--lang", "en", "--topics", ","),
    ],
)
def test_invalid_subscription_is_a_clear_error_and_writes_nothing(
    run, redis: Redis, args: tuple[str, ...]
) -> None:  # type: ignore[no-untyped-def]
    result = run("subscribe", *args)
    assert result.exit_code == 1
    assert "sorawatch:" in result.output
    assert EventLog(redis).count() == 0
    assert subscribers.count(redis, Keys()) == 0


def test_webhook_add_list_remove_and_the_secret_signs(run, redis: Redis) -> None:  # type: ignore[no-untyped-def]
    result = run("webhook", "add", "http://127.0.0.1:9/hook", "--lang", "en",
                 "--topics", "pricing")  # fmt: skip
    assert result.exit_code == 0, result.output
    hook_id = result.output.split()[0]
    secret = next(line.split(": ", 1)[1] for line in result.output.splitlines()
                  if line.startswith("secret: "))  # fmt: skip
    keys = Keys()
    assert webhooks.secret(redis, keys, hook_id) == secret
    # the secret works with the Standard Webhooks library, and is nowhere in the log
    verifier = Verifier(secret)
    signature = verifier.sign("msg_1", __import__("datetime").datetime.now(), '{"a":1}')
    headers = {"webhook-id": "msg_1", "webhook-signature": signature,
               "webhook-timestamp": str(int(__import__("time").time()))}  # fmt: skip
    assert verifier.verify('{"a":1}', headers) == {"a": 1}
    assert all(secret not in e.to_json() for _, e in EventLog(redis).read())
    assert webhooks.matching(redis, keys, "pricing", "news") == [hook_id]
    assert webhooks.matching(redis, keys, "status", "news") == []
    listing = run("webhook", "list")
    assert hook_id in listing.output
    assert secret not in listing.output
    assert run("webhook", "remove", hook_id).exit_code == 0
    assert webhooks.list_all(redis, keys) == []
    assert run("webhook", "remove", hook_id).exit_code == 1


@pytest.mark.parametrize(
    ("url", "extra"),
    [
        ("ftp://example.com/hook", ()),
        ("not a url", ()),
        ("http://127.0.0.1:9/hook", ("--lang", "de")),
        ("http://127.0.0.1:9/hook", ("--secret", "plain-text")),
    ],
)
def test_invalid_webhook_is_a_clear_error_and_writes_nothing(
    run, redis: Redis, url: str, extra: tuple[str, ...]
) -> None:  # type: ignore[no-untyped-def]
    result = run("webhook", "add", url, *extra)
    assert result.exit_code == 1
    assert "sorawatch:" in result.output
    assert EventLog(redis).count() == 0
    assert not redis.exists(Keys().webhook_secrets)


def test_webhook_inside_the_network_is_refused_unless_allowed(redis: Redis) -> None:
    log = EventLog(redis)
    with pytest.raises(Exception, match="inside the network"):
        endpoints.register(log, "http://127.0.0.1:9/hook", allow_private=False)
    assert log.count() == 0


def test_subscribe_without_confirmed_queues_the_confirmation_mail(run, redis: Redis) -> None:  # type: ignore[no-untyped-def]
    from sorawatch.events import queue

    result = run("subscribe", "Mail.Me@Example.com", "--lang", "en", "--topics", "status")
    assert result.exit_code == 0, result.output
    assert "confirmation mail queued" in result.output
    jobs = [(j.func_name, tuple(j.args)) for j in queue("email", redis, Keys()).jobs]
    assert jobs == [("sorawatch.workers.email.send_confirmation", ("mail.me@example.com",))]
    # Asked again (another spelling of the mailbox) within the day: no second mail.
    again = run("subscribe", "mail.me+x@example.com", "--lang", "en", "--topics", "status")
    assert again.exit_code == 0, again.output
    assert queue("email", redis, Keys()).count == 1


def test_events_count_honours_type(run, redis: Redis) -> None:  # type: ignore[no-untyped-def]
    for n in range(3):
        run("subscribe", f"c{n}@example.com", "--lang", "en", "--topics", "status", "--confirmed")
    run("unsubscribe", "c0@example.com")
    assert run("events", "--count").output.strip() == "4"
    assert run("events", "--count", "--type", "subscriber.unsubscribed").output.strip() == "1"
    counted = run("events", "--count", "--type", "subscriber.requested", "--type", "x.y")
    assert counted.output.strip() == "3"


def test_subscribe_with_a_cadence_and_digest_now(  # type: ignore[no-untyped-def]
    run, redis: Redis, tmp_path_factory: pytest.TempPathFactory
) -> None:
    result = run("subscribe", "d@example.com", "--lang", "en", "--topics", "status",
                 "--cadence", "daily", "--tz", "Asia/Riyadh", "--hour", "8", "--confirmed")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "daily digest at 08:00 Asia/Riyadh" in result.output
    sub = subscribers.get(redis, Keys(), "d@example.com")
    assert sub is not None
    assert (sub.cadence, sub.tz, sub.hour) == ("daily", "Asia/Riyadh", 8)
    bad = run("subscribe", "e@example.com", "--lang", "en", "--topics", "status",
              "--tz", "Mars/Olympus", "--confirmed")  # fmt: skip
    assert bad.exit_code != 0
    assert "Mars/Olympus" in bad.output
    assert subscribers.get(redis, Keys(), "e@example.com") is None
    # Nothing was raised: the digest due tells nothing, and sends nothing.
    digest = run("digest", "--now", "2099-01-02T05:00:00Z")
    assert digest.exit_code == 0, digest.output
    assert "digests due: 1 subscriber(s) in 1 batch(es)" in digest.output
    assert run("digest", "--now", "2099-01-02T05:10:00Z").output.startswith("digests due: 0")
    assert run("digest", "--now", "yesterday").exit_code == 2

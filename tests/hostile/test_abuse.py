"""Misuse of the public subscribe form, over the real app, a real Redis, real RQ
workers and a real SMTP server: mail-bombing a victim, growing Redis with made-up
addresses, hiding behind IPv6 or a proxy."""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from redis import Redis

from sorawatch.commands import subscriptions
from sorawatch.errors import ValidationError
from sorawatch.keys import Keys
from sorawatch.projections import subscribers
from sorawatch.settings import Settings, SmtpSettings
from sorawatch.testing.smtp import SmtpServer
from sorawatch.web.app import create_app
from sorawatch.workers import runtime, worker
from tests.reliability import Figures

pytestmark = pytest.mark.hostile

FORM = {"lang": "en", "topics": ["status"], "kinds": ["change"]}
FLOOD = 10_000  # made-up addresses in the growth test


def _web(settings: Settings, **changes: object) -> Settings:
    return dataclasses.replace(settings, web=dataclasses.replace(settings.web, **changes))


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


def _burst(settings: Settings, redis: Redis) -> None:
    try:
        worker.burst(settings, redis)
    finally:
        runtime.reset()


def test_one_confirmation_mail_per_mailbox_whatever_the_spelling(
    settings: Settings, redis: Redis, smtp: SmtpServer, reliability: Figures
) -> None:
    live = dataclasses.replace(
        _web(settings, subscribe_rate=1000),
        smtp=SmtpSettings(host="127.0.0.1", port=smtp.port, timeout=5),
    )
    spellings = [
        "victim@example.com", "Victim@Example.com", "VICTIM@example.COM", " victim@example.com ",
        *(f"victim+{n}@example.com" for n in range(20)),
    ]  # fmt: skip
    attempts = 0
    with TestClient(create_app(live, redis)) as client:
        for _round in range(2):  # the same flood again, after the first mail went out
            for n, address in enumerate(spellings):
                # From many addresses: the per-client limit is not what stops it.
                client_ip = f"198.51.100.{n + 1}"
                with TestClient(create_app(live, redis), client=(client_ip, 4000)) as other:
                    response = other.post("/subscribe", data={**FORM, "email": address})
                attempts += 1
                assert response.status_code == 200
                assert "Check your inbox" in response.text
            _burst(live, redis)
        assert client.get("/").status_code == 200
    mails = [m for m in smtp.messages if any("victim" in r for r in m.recipients)]
    assert len(mails) == 1, [m.recipients for m in mails]
    # The mail does not promise silence it cannot keep.
    body = mails[0].message.get_body(("plain",))
    assert body is not None
    assert "will not write again" not in body.get_content()
    reliability.hostile_cases(
        "subscribe flood: one mailbox, 24 spellings x 2, many clients", attempts
    )
    reliability.note(
        f"Subscribe flood: {attempts} requests for one mailbox (case, +tag, 24 client"
        f" addresses) sent {len(mails)} confirmation mail."
    )


def test_ipv6_clients_are_counted_per_64(settings: Settings, redis: Redis) -> None:
    app = create_app(_web(settings, subscribe_rate=2), redis)
    codes = []
    for n in range(3):  # three addresses of one /64
        with TestClient(app, client=(f"2001:db8:1:2::{n + 1:x}", 4000)) as c:
            codes.append(c.post("/subscribe", data={**FORM, "email": f"v6-{n}@example.com"}))
    assert [r.status_code for r in codes] == [200, 200, 429]
    with TestClient(app, client=("2001:db8:1:3::1", 4000)) as c:  # the next /64
        assert c.post("/subscribe", data={**FORM, "email": "v6-x@example.com"}).status_code == 200


def test_forwarded_for_only_from_trusted_proxies(settings: Settings, redis: Redis) -> None:
    app = create_app(_web(settings, subscribe_rate=1, trusted_proxies=["10.0.0.0/8"]), redis)

    def post(peer: str, forwarded: str, email: str) -> int:
        with TestClient(app, client=(peer, 4000)) as c:
            headers = {"X-Forwarded-For": forwarded}
            return c.post("/subscribe", data={**FORM, "email": email}, headers=headers).status_code

    # Behind the trusted proxy, each client has its own bucket (the client wrote the
    # first hop itself: only the last untrusted one counts).
    assert post("10.0.0.5", "203.0.113.1", "p1@example.com") == 200
    assert post("10.0.0.5", "203.0.113.2", "p2@example.com") == 200
    assert post("10.0.0.6", "1.2.3.4, 203.0.113.1, 10.0.0.9", "p3@example.com") == 429
    # A peer that is not a trusted proxy cannot pick its bucket with the header.
    assert post("192.0.2.50", "203.0.113.3", "p4@example.com") == 200
    assert post("192.0.2.50", "203.0.113.4", "p5@example.com") == 429


@pytest.mark.slow
@pytest.mark.timeout(1800)  # waits for real expiries; a bound, not a budget
def test_unconfirmed_requests_leave_nothing_once_expired(
    settings: Settings, redis: Redis, smtp: SmtpServer, reliability: Figures
) -> None:
    n = FLOOD
    ttl = 60
    live = dataclasses.replace(
        _web(settings, subscribe_rate=n * 2, pending_ttl=ttl, confirm_interval=ttl),
        smtp=SmtpSettings(host="127.0.0.1", port=smtp.port, timeout=5),
    )
    keys = Keys(live.redis.prefix)
    with TestClient(create_app(live, redis)) as client:
        assert client.get("/").status_code == 200  # the signing secret and the like
        before = _bytes(redis)
        for i in range(n):
            response = client.post("/subscribe", data={**FORM, "email": f"made.up.{i}@example.com"})
            assert response.status_code == 200
    assert subscribers.get(redis, keys, f"made.up.{n - 1}@example.com") is not None
    while_pending = _bytes(redis)
    # The workers run the confirmation jobs (those of requests that expired while the
    # others were posted find nothing to send: how many is a matter of speed).
    _burst(live, redis)
    sent = len(smtp.messages)
    assert sent > 0
    # Wait (with a generous bound) until every request, and every job and job result
    # its mail left (they live as long as the request, at most an hour), has expired.
    deadline = time.monotonic() + 1200
    for pattern in (f"{keys.prefix}:pending:*", "rq:job:*", "rq:results:*"):
        while any(redis.scan_iter(match=pattern, count=1000)):
            assert time.monotonic() < deadline, f"{pattern} did not expire: {_kinds(redis)}"
            time.sleep(0.5)
    _burst(live, redis)  # a worker's maintenance cleans RQ's registries
    left = _bytes(redis) - before
    assert redis.xlen(keys.events) == 0
    assert subscribers.get(redis, keys, "made.up.0@example.com") is None
    assert left < 1_000_000, (left, _kinds(redis))
    reliability.note(
        f"{n:,} unconfirmed requests for made-up addresses: {while_pending - before:,} bytes"
        f" in Redis while pending, {sent:,} confirmation mails sent, {left:,} bytes left"
        " once expired (limit 1 MB)."
    )


def _kinds(redis: Redis) -> dict[str, int]:
    """Keys left, by their first two parts (for a failure message)."""
    found: Counter[str] = Counter()
    for key in redis.scan_iter(count=1000):
        found[":".join(key.decode().split(":")[:2])] += 1
    return dict(found.most_common(10))


def _bytes(redis: Redis) -> int:
    """What every key of the database takes (MEMORY USAGE, all samples)."""
    total = 0
    for key in redis.scan_iter(count=1000):
        total += int(redis.memory_usage(key, samples=0) or 0)
    return total


@pytest.mark.parametrize(
    "address",
    [
        "\u00fc@example.com",  # a non-ASCII local part (no SMTPUTF8 end to end)
        "evil\u202egro.example@example.com",  # right-to-left override
        "zero\u200bwidth@example.com",  # zero-width space
        "a\u2066b@example.com",  # bidi isolate
        "joiner@exa\u200dmple.com",
        "soft\u00adhyphen@example.com",
        "line\u2028sep@example.com",
        "x@exa_mple.com",
        "x@-example.com",
    ],
)
def test_addresses_with_hidden_or_non_ascii_characters_are_refused(
    settings: Settings, redis: Redis, address: str, reliability: Figures
) -> None:
    with pytest.raises(ValidationError):
        subscriptions.normalize_email(address)
    with TestClient(create_app(settings, redis)) as client:
        response = client.post("/subscribe?lang=en", data={**FORM, "email": address})
    assert response.status_code == 400
    assert not list(redis.scan_iter(match="sw:pending:*"))
    reliability.hostile_cases("web: addresses with non-ASCII, bidi and zero-width characters", 1)


def test_international_domains_are_kept_in_ascii_and_the_mail_header_is_valid(
    settings: Settings, redis: Redis, smtp: SmtpServer
) -> None:
    assert subscriptions.normalize_email("Reader@Bücher.example") == "reader@xn--bcher-kva.example"
    live = dataclasses.replace(
        settings, smtp=SmtpSettings(host="127.0.0.1", port=smtp.port, timeout=5)
    )
    with TestClient(create_app(live, redis)) as client:
        form = {**FORM, "email": "reader@bücher.example"}
        assert client.post("/subscribe", data=form).status_code == 200
    _burst(live, redis)
    [mail] = smtp.messages
    assert mail.recipients == ["reader@xn--bcher-kva.example"]
    assert mail.message["To"] == "reader@xn--bcher-kva.example"

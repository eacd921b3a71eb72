"""The shared mail rate (``smtp.rate``): a GCRA limiter in Redis, real SMTP server.

Counts are checked against the limiter's own clock (Redis ``TIME``, the slot times
it grants), never against how long anything took: at rate R with burst B, no
window of W seconds holds more than R × W + B granted slots.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import multiprocessing
import queue
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from sorawatch import store
from sorawatch.errors import SettingsError
from sorawatch.events import EventLog
from sorawatch.keys import Keys
from sorawatch.projections import ledger
from sorawatch.settings import Settings, load_settings
from sorawatch.testing.alerts import raise_alert
from sorawatch.testing.smtp import SmtpServer
from sorawatch.workers import mail
from sorawatch.workers.fanout import fan_out
from sorawatch.workers.mail.base import RawMessage
from sorawatch.workers.mail.rate import FLOOR, RateLimiter, Slot, burst_for
from sorawatch.workers.mail.smtp import SmtpMailer
from tests.workers.delivery_helpers import (
    events_of,
    failed_jobs,
    run_jobs,
    setup_runtime,
    subscribe,
    with_smtp,
)


def most_in_window(times: Sequence[float], window: float) -> int:
    """The largest number of ``times`` inside any half-open window of ``window`` seconds."""
    ordered = sorted(times)
    return max(bisect.bisect_left(ordered, t + window) - i for i, t in enumerate(ordered))


def assert_within_rate(times: Sequence[float], rate: float) -> None:
    burst = burst_for(rate)
    for window in (0.05, 0.2, 1.0, 3.0):
        assert most_in_window(times, window) <= rate * window + burst, (window, rate)


def limiter_for(settings: Settings, rate: float, **options: Any) -> RateLimiter:
    return RateLimiter(
        lambda: store.connect_async(settings), Keys(settings.redis.prefix), rate, **options
    )


def message(n: int) -> RawMessage:
    data = f"To: r{n}@example.test\r\nSubject: {n}\r\n\r\nhello {n}\r\n".encode()
    return RawMessage("alerts@watch.example.test", f"r{n}@example.test", data)


def test_two_limiters_share_one_rate(redis: Redis, settings: Settings) -> None:
    """Two workers (two limiters, two connections) asking at once get one rate between
    them: slots are reserved, not waited for here, so this runs in no time."""
    rate = 200.0

    async def ask(limiter: RateLimiter, count: int) -> list[Slot]:
        try:
            return [await limiter.take() for _ in range(count)]
        finally:
            await limiter.close()

    async def both() -> list[Slot]:
        a, b = limiter_for(settings, rate), limiter_for(settings, rate)
        got = await asyncio.gather(ask(a, 300), ask(b, 300))
        return got[0] + got[1]

    slots = asyncio.run(both())
    assert len(slots) == 600
    assert all(s.wait >= 0 and s.rate == rate for s in slots)
    assert_within_rate([s.at for s in slots], rate)
    # Reserved in a burst, the 600 slots stretch over (600 - burst) / rate seconds at least.
    ats = sorted(s.at for s in slots)
    assert ats[-1] - ats[0] >= (600 - burst_for(rate)) / rate - 1e-3


def _child(settings: Settings, port: int, rate: float, count: int, first: int, out: Any) -> None:
    """One worker process: send ``count`` messages through the rate-limited SMTP mailer."""
    slots: list[float] = []

    class Recording(RateLimiter):
        async def take(self) -> Slot:
            slot = await super().take()
            slots.append(slot.at)
            return slot

    async def run() -> list[bool]:
        limiter = Recording(
            lambda: store.connect_async(settings), Keys(settings.redis.prefix), rate
        )
        smtp = with_smtp(settings, port, concurrency=2).smtp
        mailer = SmtpMailer(smtp, limiter)

        async def lane(numbers: list[int]) -> list[bool]:
            return [(await mailer.send(message(n))).ok for n in numbers]

        try:
            numbers = list(range(first, first + count))
            done = await asyncio.gather(lane(numbers[0::2]), lane(numbers[1::2]))
            return done[0] + done[1]
        finally:
            await mailer.close()

    results = asyncio.run(run())
    out.put((results, slots))


def test_two_worker_processes_keep_the_set_rate_between_them(
    redis: Redis, settings: Settings, smtp: SmtpServer
) -> None:
    """A tiny bench: two processes send through one Redis; every message arrives once
    and the slots granted across both never exceed the rate (by the limiter's clock)."""
    rate, each = 40.0, 20
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_child, args=(settings, smtp.port, rate, each, i * each, out))
        for i in range(2)
    ]
    for p in procs:
        p.start()
    reports: list[Any] = []
    deadline = time.monotonic() + 120
    try:
        while len(reports) < len(procs) and time.monotonic() < deadline:
            try:
                reports.append(out.get(timeout=1))
            except queue.Empty:
                if any(p.exitcode not in (None, 0) for p in procs):
                    break  # a child died: its report will never come
    finally:
        for p in procs:
            p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert len(reports) == 2
    assert all(all(ok) for ok, _slots in reports)
    slots = [at for _ok, granted in reports for at in granted]
    assert len(slots) == 2 * each
    assert_within_rate(slots, rate)
    received = sorted(r for m in smtp.messages for r in m.recipients)
    assert received == sorted(f"r{n}@example.test" for n in range(2 * each))


def test_a_421_halves_the_shared_rate_once_and_is_logged_with_its_code(
    redis: Redis, settings: Settings, smtp: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    rate = 100.0
    # No recovery, a long cooldown: what is measured is the slow-down alone.
    limiter = limiter_for(settings, rate, recover=0.0, cooldown=3600.0)
    mailer = SmtpMailer(with_smtp(settings, smtp.port, concurrency=1).smtp, limiter)
    smtp.fail_next(2, 421)

    async def run() -> tuple[list[int | None], float]:
        try:
            codes = [(await mailer.send(message(n))).code for n in range(3)]
            # A second worker sees the same lowered rate.
            other = limiter_for(settings, rate, recover=0.0)
            try:
                return codes, await other.current()
            finally:
                await other.close()
        finally:
            await mailer.close()

    with caplog.at_level(logging.WARNING, logger="sorawatch.mail"):
        codes, shared = asyncio.run(run())
    assert codes == [421, 421, 250]
    assert shared == rate / 2  # halved once: the second 421 came within the cooldown
    lowered = [r.getMessage() for r in caplog.records if "answered 421" in r.getMessage()]
    assert len(lowered) == 1
    assert "50.00/s" in lowered[0]


def test_slow_downs_stop_at_the_floor_and_the_rate_recovers(
    redis: Redis, settings: Settings
) -> None:
    rate = 16.0

    async def run() -> tuple[list[bool], float, float]:
        # No cooldown and no recovery: every refusal halves, down to the floor.
        stuck = limiter_for(settings, rate, recover=0.0, cooldown=0.0)
        try:
            changed = [await stuck.slow_down(454) for _ in range(6)]
            floor = await stuck.current()
        finally:
            await stuck.close()
        # Recovery, fast: the rate climbs back to the set rate and no further.
        healing = limiter_for(settings, rate, recover=50.0)
        try:
            deadline = time.monotonic() + 30
            now = await healing.current()
            while now < rate and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
                now = await healing.current()
            slot = await healing.take()
            return changed, floor, max(now, slot.rate)
        finally:
            await healing.close()

    changed, floor, recovered = asyncio.run(run())
    assert changed == [True, True, True, True, False, False]
    assert floor == rate * FLOOR
    assert recovered == rate


def test_alert_mail_refused_with_421_is_sent_later_and_slows_every_worker(
    smtp: SmtpServer, redis: Redis, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Through the real job: the refused recipients are retried and get one mail each."""
    settings = with_smtp(settings, smtp.port, rate=500.0)
    setup_runtime(settings, redis)
    log = EventLog(redis, Keys(settings.redis.prefix))
    addresses = [f"s{i}@example.test" for i in range(6)]
    for address in addresses:
        subscribe(log, address, "en")
    _, event = raise_alert(log)
    smtp.fail_next(2, 421)
    fan_out(event.id)
    with caplog.at_level(logging.WARNING, logger="sorawatch.mail"):
        run_jobs(redis)
    assert failed_jobs(redis) == []
    assert sorted(r for m in smtp.messages for r in m.recipients) == sorted(addresses)
    assert [code for _, code in smtp.recorder.answered].count(421) == 2
    assert len(events_of(log, "delivery.failed")) == 1
    for address in addresses:
        assert ledger.status(redis, log.keys, "al_test1", "email", address) == "sent"
    assert any("answered 421" in r.getMessage() for r in caplog.records)
    assert redis.hexists(Keys(settings.redis.prefix).smtp_rate, "low")  # lowered for everyone


def test_no_rate_no_limiter_and_no_key(smtp: SmtpServer, redis: Redis, settings: Settings) -> None:
    settings = with_smtp(settings, smtp.port)
    assert mail.limiter(settings) is None
    mailer = mail.build(settings)
    assert isinstance(mailer, SmtpMailer)
    assert mailer.limiter is None


def test_the_rate_is_a_setting_from_file_or_environment(tmp_path: Path) -> None:
    config = tmp_path / "sorawatch.toml"
    config.write_text("[smtp]\nhost = '127.0.0.1'\nrate = 14\n")
    assert load_settings(config, env={}).smtp.rate == 14.0
    assert load_settings(config, env={"SORAWATCH_SMTP_RATE": "2.5"}).smtp.rate == 2.5
    assert load_settings(env={}).smtp.rate == 0.0  # unlimited unless set
    for env in ({"SORAWATCH_SMTP_RATE": "-1"}, {"SORAWATCH_SMTP_RATE": "fast"}):
        with pytest.raises(SettingsError, match="SORAWATCH_SMTP_RATE"):
            load_settings(config, env=env)
    config.write_text("[smtp]\nrate = -14\n")
    with pytest.raises(SettingsError, match=r"smtp\.rate"):
        load_settings(config, env={})

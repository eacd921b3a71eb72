"""The deployment's mail rate (``smtp.rate``), shared by every worker through Redis.

One key holds a GCRA limiter (the generic cell rate algorithm: a "theoretical
arrival time" that each message pushes one emission interval further). One Lua
script does the arithmetic, reading Redis ``TIME``, so workers on different hosts
share one clock and one budget. A message *reserves* its slot: the script answers
how long to wait, the sender sleeps that long, then sends. Over any stretch of W
seconds at most ``rate × W + burst`` messages go out.

- **Burst**: ``max(1, rate / 10)`` messages may go at once after a quiet spell
  (a tenth of a second's worth), never more.
- **Slowing down**: a relay answering 421 or 454 ("too many", "try later") halves
  the shared rate for every worker, at most once per ``COOLDOWN`` seconds and never
  below ``FLOOR`` of the set rate. The rate then climbs back by ``RECOVER`` of the
  set rate per second (from half to full in 5 s). The refused message is retried
  as any transient failure is (``sorawatch.workers.retry``).

Losing the key loses nothing but the current pace: the next message starts afresh.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis as AsyncRedis
from redis.commands.core import AsyncScript

from sorawatch.keys import Keys

log = logging.getLogger("sorawatch.mail")

THROTTLE_CODES = frozenset({421, 454})  # RFC 5321 "closing channel" / RFC 4954 "try later"
BURST = 0.1  # seconds' worth of messages that may go at once (at least one)
FLOOR = 1 / 16  # the slowest the relay can push us: this share of the set rate
RECOVER = 0.1  # share of the set rate regained per second after a slow-down
COOLDOWN = 2.0  # seconds after a slow-down during which further refusals halve nothing

# KEYS[1]: the limiter hash {tat, low, since} (microseconds of Redis TIME, messages/s).
# ARGV: mode (take | slow | peek), set rate, burst (messages), recover, floor, cooldown.
# Returns {flag or wait (us), slot time (us), current rate (string)}.
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local mode = ARGV[1]
local set = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tat', 'low', 'since')
local tat = tonumber(state[1]) or now
local low = tonumber(state[2])
local since = tonumber(state[3]) or 0
local rate = set
if low then
  rate = math.min(set, low + set * tonumber(ARGV[4]) * (now - since) / 1000000)
end
if mode == 'peek' then
  return {0, now, tostring(rate)}
end
local keep = 600000
if mode == 'slow' then
  if low and now - since < tonumber(ARGV[6]) * 1000000 then
    return {0, now, tostring(rate)}
  end
  local slower = math.max(set * tonumber(ARGV[5]), rate / 2)
  redis.call('HSET', KEYS[1], 'low', tostring(slower), 'since', tostring(now))
  redis.call('PEXPIRE', KEYS[1], math.floor(math.max(tat - now, 0) / 1000) + keep)
  local changed = 0
  if slower < rate then changed = 1 end
  return {changed, now, tostring(slower)}
end
local interval = 1000000 / rate
local base = math.max(tat, now)
local at = math.max(base - (tonumber(ARGV[3]) - 1) * interval, now)
tat = base + interval
redis.call('HSET', KEYS[1], 'tat', string.format('%.0f', tat))
redis.call('PEXPIRE', KEYS[1], math.floor((tat - now) / 1000) + keep)
return {math.floor(at - now), math.floor(at), tostring(rate)}
"""


def burst_for(rate: float) -> float:
    """Messages that may go at once after a quiet spell: a tenth of a second's worth."""
    return max(1.0, rate * BURST)


@dataclass(frozen=True, slots=True)
class Slot:
    """A reserved sending time: ``wait`` seconds from now, at ``at`` (Redis clock, seconds),
    granted while the shared rate was ``rate`` messages per second."""

    wait: float
    at: float
    rate: float


class RateLimiter:
    """The shared mail rate of one deployment (``keys.smtp_rate``).

    Builds its asyncio Redis client on first use, inside the running loop (a job
    runs its own loop), and drops it on ``close``. Redis errors propagate.
    """

    def __init__(
        self,
        connect: Callable[[], AsyncRedis],
        keys: Keys,
        rate: float,
        *,
        recover: float = RECOVER,
        cooldown: float = COOLDOWN,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"smtp.rate: {rate} is not a positive rate")
        self.rate = rate
        self.key = keys.smtp_rate
        self.recover = recover
        self.cooldown = cooldown
        self._connect = connect
        self._client: AsyncRedis | None = None
        self._script: AsyncScript | None = None

    async def _call(self, mode: str) -> tuple[int, int, float]:
        if self._script is None:
            self._client = self._connect()
            # EVALSHA, loading the script once per Redis (again after a restart).
            self._script = self._client.register_script(_SCRIPT)
        numbers = (self.rate, burst_for(self.rate), self.recover, FLOOR, self.cooldown)
        args = [mode, *(repr(n) for n in numbers)]
        flag, at, rate = await self._script(keys=[self.key], args=args)
        return int(flag), int(at), float(rate)

    async def take(self) -> Slot:
        """Reserve the next slot; the caller waits ``slot.wait`` seconds, then sends."""
        wait, at, rate = await self._call("take")
        return Slot(wait / 1e6, at / 1e6, rate)

    async def slow_down(self, code: int) -> bool:
        """The relay answered ``code`` (421 or 454): halve the shared rate unless
        someone did within ``cooldown``. Logs and returns True when this call did."""
        changed, _at, rate = await self._call("slow")
        if changed:
            log.warning(
                "mail relay answered %d: shared mail rate lowered to %.2f/s"
                " (set %.2f/s, regained at %.2f/s each second)",
                code, rate, self.rate, self.rate * self.recover,
            )  # fmt: skip
        return bool(changed)

    async def current(self) -> float:
        """The shared rate now (the set rate, or lower while recovering from a slow-down)."""
        _flag, _at, rate = await self._call("peek")
        return rate

    async def close(self) -> None:
        if self._client is not None:
            client, self._client, self._script = self._client, None, None
            await client.aclose()

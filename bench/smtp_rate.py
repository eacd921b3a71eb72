"""smtp.rate bench: does the shared mail rate hold with two worker processes?

    python bench/smtp_rate.py [--rates 20,200] [--seconds 12] [--repeat 3] [--w 2]
                              [--throttle-rate 50] [--skip-throttle] [--skip-capacity]
                              [--budget 600] [--quick]

Everything runs on 127.0.0.1: a redis-server of its own and an aiosmtpd server that
notes when each message arrives (aiosmtpd takes ~500 messages/s, well above the rates
measured here, and can answer 421 on cue). For each set rate R, ``--repeat`` runs,
each on an emptied Redis: R × ``--seconds`` confirmed subscribers, one alert fanned out
in 16 batches, then W spawned burst workers (the real job functions, ``smtp.rate = R``,
``smtp.concurrency`` 4 each) send it. The rate is measured from the sink's arrival
times over the steady window (the first and the last second left out): arrivals in
the window ÷ its length. Printed per run: measured rate, deviation from R in %, the
slowest and fastest whole second; per R: the median, the spread (max − min) and the
median's deviation. Each round also has a capacity run: the largest rate's mail with no
``smtp.rate`` (three times as much), the ceiling of the workers and the sink at that moment (the cores are
shared: a set rate near or above it cannot be held, and the run shows why). At the end
a ``RESULT {json}`` line (valid JSON, null for missing).

The throttle run (``--throttle-rate``, default 50/s, for about 20 s of mail): the sink
answers 421 to every recipient from the 4th to the 7th second, then accepts again.
Printed per second: messages accepted, 421s answered, the shared rate read from Redis.
The refused messages are retried by the workers (retries without delay here) and
every subscriber still gets exactly one mail.

Exit codes: 0 done and every mail arrived exactly once; 1 a mail missing or doubled;
2 the time budget (``--budget`` seconds) ran out, with a message saying where.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from common import WorkerPool, machine, redis_server
from fanout import seed_subscribers
from figures import Budget, OutOfTime, num, report
from redis import Redis

from sorawatch import store
from sorawatch.events import EventLog
from sorawatch.keys import Keys
from sorawatch.projections import ledger
from sorawatch.settings import DataSettings, Settings, SmtpSettings, WebSettings, WorkerSettings
from sorawatch.testing.alerts import raise_alert
from sorawatch.testing.ports import free_port
from sorawatch.workers import fanout
from sorawatch.workers.mail.rate import RateLimiter

BATCHES = 16  # jobs per run, so both workers always have work
EDGE = 1.0  # seconds left out at each end of a run (the burst, the last stragglers)


class Sink:
    """aiosmtpd on 127.0.0.1: keeps each accepted message's arrival time and recipient;
    between ``refuse_from`` and ``refuse_until`` (epoch seconds) answers 421 instead."""

    def __init__(self) -> None:
        self.port = free_port()
        self.lock = threading.Lock()
        self.arrivals: list[tuple[float, str]] = []
        self.refusals: list[float] = []
        self.refuse_from = self.refuse_until = 0.0
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        now = time.time()
        if self.refuse_from <= now < self.refuse_until:
            with self.lock:
                self.refusals.append(now)
            return "421 4.7.0 Too many messages, slow down"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        now = time.time()
        with self.lock:
            self.arrivals.extend((now, rcpt) for rcpt in envelope.rcpt_tos)
        return "250 Message accepted for delivery"

    def reset(self) -> None:
        with self.lock:
            self.arrivals.clear()
            self.refusals.clear()
            self.refuse_from = self.refuse_until = 0.0

    def __enter__(self) -> Sink:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


def make_settings(redis_url: str, tmp: Path, port: int, rate: float, batch: int) -> Settings:
    return dataclasses.replace(
        Settings(),
        data=DataSettings(dir=str(tmp / "data")),
        smtp=SmtpSettings(
            host="127.0.0.1", port=port, rate=rate, from_="Sorawatch <alerts@watch.example.test>"
        ),
        web=WebSettings(base_url="https://watch.example.test", secret="bench-secret"),
        # Refused messages come back at once: the throttle run is about the rate.
        workers=WorkerSettings(batch_size=batch, retry_schedule=[0] * 10),
    ).with_redis_url(redis_url)


def steady_rate(times: list[float]) -> tuple[float | None, float]:
    """Arrivals per second over the run without its first and last ``EDGE`` seconds;
    returns (rate, window seconds). None when the window is too short to say."""
    if len(times) < 2:
        return None, 0.0
    start, end = times[0] + EDGE, times[-1] - EDGE
    if end - start < 2.0:
        return None, max(end - start, 0.0)
    inside = sum(1 for t in times if start <= t < end)
    return inside / (end - start), end - start


def per_second(times: list[float], origin: float) -> Counter[int]:
    return Counter(int(t - origin) for t in times)


@dataclasses.dataclass
class Run:
    rate: float
    planned: int
    arrived: int
    distinct: int
    sent: int
    abandoned: int
    measured: float | None
    window: float
    seconds: list[int]  # messages per whole second, the edges left out
    wall: float
    jobs: list[int]  # batch jobs each worker process ran

    @property
    def deviation(self) -> float | None:
        if self.measured is None or not self.rate:
            return None
        return (self.measured / self.rate - 1) * 100

    @property
    def exact(self) -> bool:
        return self.arrived == self.distinct == self.sent == self.planned and not self.abandoned


def deliver(
    server_url: str, redis: Redis, sink: Sink, tmp: Path, rate: float, n: int, workers: int,
    budget: Budget, tag: str,
) -> tuple[Run, list[tuple[float, str]]]:  # fmt: skip
    """One run on an emptied Redis: ``n`` subscribers, one alert, ``workers`` processes."""
    redis.flushdb()
    sink.reset()
    keys = Keys()
    batch = max(1, -(-n // BATCHES))
    settings = make_settings(server_url, tmp, sink.port, rate, batch)
    log = EventLog(redis, keys)
    seed_subscribers(redis, keys, 0, n)
    alert, _ = raise_alert(log, alert_id=f"al_{tag}")
    planned = fanout.fan_out_alert(log, alert, settings)["email"]
    expected = n / (rate or 300)  # unlimited: a few hundred a second on a busy machine
    budget.need(expected + 20, f"{tag} ({n:,} mails at {rate:g}/s)")
    pool = WorkerPool(settings, ["email"], workers)
    try:
        wall, stats = pool.run(timeout=min(budget.left(), 3 * expected + 60))
    except TimeoutError as exc:
        raise OutOfTime(f"{tag}: {exc}") from None
    arrivals = sorted(sink.arrivals)
    times = [t for t, _ in arrivals]
    measured, window = steady_rate(times)
    counts = ledger.counts(redis, keys, str(alert["alert_id"]), "email")
    seconds: list[int] = []
    if times:
        by_second = per_second(times, times[0])
        length = times[-1] - times[0]
        seconds = [by_second.get(s, 0) for s in range(int(EDGE), int(length - EDGE))]
    run = Run(
        rate=rate, planned=planned, arrived=len(arrivals),
        distinct=len({rcpt for _, rcpt in arrivals}), sent=counts.get("sent", 0),
        abandoned=counts.get("abandoned", 0), measured=measured, window=window,
        seconds=seconds, wall=wall, jobs=sorted(s["jobs"] for s in stats),
    )  # fmt: skip
    return run, arrivals


def shown(rate: float | None) -> str:
    return "too short a run to say" if rate is None else f"{rate:.0f}/s"


def show(run: Run, k: int) -> None:
    if run.measured is None:
        print(f"  {run.rate:g}/s run {k}: too short a steady window ({run.window:.1f} s)")
        return
    lo = min(run.seconds) if run.seconds else 0
    hi = max(run.seconds) if run.seconds else 0
    print(f"  {run.rate:g}/s run {k}: {run.measured:.2f}/s over {run.window:.1f} s "
          f"({run.deviation:+.2f} %); whole seconds {lo}-{hi}; {run.arrived:,} of "
          f"{run.planned:,} arrived ({run.distinct:,} distinct) in {run.wall:.1f} s; jobs per "
          f"worker {'/'.join(map(str, run.jobs))}" + ("" if run.exact else "  ** NOT EXACTLY ONCE **"), flush=True)  # fmt: skip


def summary(rate: float, runs: list[Run]) -> dict[str, Any]:
    rates = [r.measured for r in runs if r.measured is not None]
    if not rates:
        return {"runs": len(runs), "median": None, "spread": None, "deviation_pct": None}
    mid = statistics.median(rates)
    spread = max(rates) - min(rates)
    worst = max(abs(x / rate - 1) * 100 for x in rates)
    print(f"  {rate:g}/s: median {mid:.2f}/s ({(mid / rate - 1) * 100:+.2f} %), spread "
          f"{min(rates):.2f}-{max(rates):.2f}/s ({spread:.2f}/s = {spread / rate * 100:.2f} % "
          f"of the set rate), worst run {worst:.2f} % off, over {len(rates)} runs",
          flush=True)  # fmt: skip
    return {
        "runs": len(runs), "measured": [num(x, 3) for x in rates], "median": num(mid, 3),
        "spread": num(spread, 3), "spread_pct": num(spread / rate * 100, 2),
        "deviation_pct": num((mid / rate - 1) * 100, 2), "worst_pct": num(worst, 2),
        "within_5pct": worst <= 5.0,
    }  # fmt: skip


class Sampler:
    """Reads the shared rate from Redis twice a second, in a thread of its own."""

    def __init__(self, settings: Settings, rate: float) -> None:
        self.settings, self.rate = settings, rate
        self.samples: list[tuple[float, float]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        limiter = RateLimiter(lambda: store.connect_async(self.settings), Keys(), self.rate)
        try:
            while not self.stop.is_set():
                self.samples.append((time.time(), await limiter.current()))
                await asyncio.sleep(0.5)
        finally:
            await limiter.close()

    def __enter__(self) -> Sampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


def throttle_run(
    server_url: str, redis: Redis, sink: Sink, tmp: Path, rate: float, workers: int,
    budget: Budget,
) -> dict[str, Any]:  # fmt: skip
    """A run where the sink answers 421 from 4 s to 7 s after the first arrival."""
    n = int(rate * 20)
    print(f"\nthrottle run: {rate:g}/s, {n:,} mails, the sink answers 421 from 4 s to 7 s",
          flush=True)  # fmt: skip
    settings = make_settings(server_url, tmp, sink.port, rate, 1)  # for the sampler's Redis
    sink.reset()  # the watcher below must not see the last run's arrivals

    def arm() -> None:
        while not sink.arrivals and not armed.is_set():
            time.sleep(0.01)
        first = sink.arrivals[0][0] if sink.arrivals else time.time()
        sink.refuse_from, sink.refuse_until = first + 4.0, first + 7.0

    armed = threading.Event()
    watcher = threading.Thread(target=arm, daemon=True)
    with Sampler(settings, rate) as sampler:
        watcher.start()
        try:
            run, arrivals = deliver(server_url, redis, sink, tmp, rate, n, workers, budget, "t")
        finally:
            armed.set()
            watcher.join(5)
    # deliver() reset the sink before the workers started, so re-read what it kept.
    times = [t for t, _ in arrivals]
    if not times:
        print("  nothing arrived")
        return {"rate": rate, "planned": n, "arrived": 0, "exact": False, "seconds": []}
    origin = times[0]
    got = per_second(times, origin)
    refused = per_second(sink.refusals, origin)
    shared: dict[int, float] = {}
    for at, value in sampler.samples:
        shared.setdefault(int(at - origin), value)
    print("  second  accepted  421s  shared rate")
    rows = []
    for s in range(int(times[-1] - origin) + 1):
        value = shared.get(s)
        rows.append({"s": s, "accepted": got.get(s, 0), "refused": refused.get(s, 0),
                     "shared_rate": num(value, 2) if value is not None else None})  # fmt: skip
        shown = f"{value:.1f}/s" if value is not None else "-"
        print(f"  {s:6d}  {got.get(s, 0):8d}  {refused.get(s, 0):4d}  {shown}")
    lowest = min((v for _, v in sampler.samples), default=None)
    print(f"  {len(sink.refusals)} answers 421; lowest shared rate {lowest}; "
          f"{run.arrived:,} of {run.planned:,} arrived ({run.distinct:,} distinct), "
          f"{run.sent:,} recorded sent, {run.abandoned} abandoned", flush=True)  # fmt: skip
    return {"rate": rate, "planned": run.planned, "arrived": run.arrived,
            "distinct": run.distinct, "refused": len(sink.refusals),
            "lowest_shared_rate": num(lowest, 2) if lowest is not None else None,
            "exact": run.exact, "seconds": rows}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="20,200", help="set rates, comma-separated (msg/s)")
    parser.add_argument("--seconds", type=float, default=12.0, help="mail per run, in seconds")
    parser.add_argument("--repeat", type=int, default=3, help="runs per rate")
    parser.add_argument("--w", type=int, default=2, help="worker processes")
    parser.add_argument("--throttle-rate", type=float, default=50.0)
    parser.add_argument("--skip-throttle", action="store_true")
    parser.add_argument(
        "--skip-capacity", action="store_true", help="no unlimited run in each round"
    )
    parser.add_argument("--budget", type=float, default=600.0, help="seconds for the whole bench")
    parser.add_argument("--quick", action="store_true", help="one run per rate, 6 s each")
    args = parser.parse_args()
    if args.quick:
        args.repeat, args.seconds = 1, 6.0
    rates = [float(x) for x in str(args.rates).split(",") if x.strip()]
    budget = Budget(args.budget)
    print(f"smtp.rate bench: rates {', '.join(f'{r:g}/s' for r in rates)} x {args.repeat} runs "
          f"of {args.seconds:g} s, W={args.w} workers (smtp.concurrency 4 each), aiosmtpd sink; "
          f"budget {args.budget:.0f} s\n  {machine()}", flush=True)  # fmt: skip
    runs: dict[float, list[Run]] = {r: [] for r in rates}
    capacity: list[float] = []
    throttled: dict[str, Any] | None = None
    everything_else: list[Run] = []  # the capacity runs
    complete, stopped = True, None
    with tempfile.TemporaryDirectory(prefix="sw-bench-") as tmpdir:
        tmp = Path(tmpdir)
        with redis_server(tmp / "redis") as server, Sink() as sink:
            redis = Redis.from_url(server.url)
            try:
                for rep in range(args.repeat):
                    for rate in rates:  # interleaved: a busy spell on the cores hits both
                        n = int(rate * args.seconds)
                        run, _ = deliver(server.url, redis, sink, tmp, rate, n, args.w, budget,
                                         f"r{rate:g}_{rep}")  # fmt: skip
                        runs[rate].append(run)
                        show(run, rep + 1)
                    if not args.skip_capacity:
                        # Three times the mail: flat out, it must still fill a steady window.
                        n = int(max(rates) * args.seconds) * 3
                        run, _ = deliver(server.url, redis, sink, tmp, 0.0, n, args.w, budget,
                                         f"c{rep}")  # fmt: skip
                        if run.measured is not None:
                            capacity.append(run.measured)
                        print(f"  capacity run {rep + 1} (no smtp.rate, {n:,} mails, the same "
                              f"workers and sink): {shown(run.measured)}; whole seconds "
                              f"{min(run.seconds, default=0)}-{max(run.seconds, default=0)}"
                              + ("" if run.exact else "  ** NOT EXACTLY ONCE **"),
                              flush=True)  # fmt: skip
                        everything_else.append(run)
                if not args.skip_throttle:
                    throttled = throttle_run(
                        server.url, redis, sink, tmp, args.throttle_rate, args.w, budget
                    )
            except OutOfTime as exc:
                complete, stopped = False, str(exc)
                print(f"\nbench: STOPPED, time budget of {args.budget:.0f} s used up: {stopped}. "
                      "The figures below cover only the runs that finished.", flush=True)  # fmt: skip
            finally:
                redis.close()
    print("\nsummary (measured over each run's steady window; spread = fastest - slowest run):")
    result_rates = {f"{rate:g}": summary(rate, done) for rate, done in runs.items() if done}
    if capacity:
        print(f"  capacity without a rate (the same round's ceiling of workers and sink): "
              f"median {statistics.median(capacity):.0f}/s, spread {min(capacity):.0f}-"
              f"{max(capacity):.0f}/s; a set rate near or above it cannot be held")  # fmt: skip
    everything = [r for done in runs.values() for r in done] + everything_else
    exact: bool | None = None
    if everything or throttled is not None:
        exact = all(r.exact for r in everything) and (throttled is None or throttled["exact"])
    said = {True: "yes", False: "NO", None: "no run finished"}[exact]
    print(f"  every mail arrived exactly once: {said}")
    result = {
        "rates": result_rates, "w": args.w, "seconds": args.seconds, "repeat": args.repeat,
        "capacity": {"runs": [num(x) for x in capacity],
                     "median": num(statistics.median(capacity)) if capacity else None},
        "throttle": throttled, "exactly_once": exact, "complete": complete, "stopped": stopped,
        "elapsed_s": num(budget.seconds - budget.left(), 1),
    }  # fmt: skip
    return report(result, complete=complete, exact=exact)


if __name__ == "__main__":
    raise SystemExit(main())

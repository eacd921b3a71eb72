"""Fan-out bench: one alert to N email subscribers and M webhooks, by W worker processes.

    python bench/fanout.py [--sizes 10000,100000] [--repeat 3] [--m 1000] [--w 2] [--quick]

Everything runs on 127.0.0.1: a redis-server of its own, Postfix's smtp-sink (C) as the
mail server and nginx (C) as the webhook receiver (see ``common.py``; both unpacked from
Debian packages into ``bench/.cache/``). Subscribers: half Arabic, a quarter English, a
quarter both. Each channel is measured on its own (W workers on the ``email`` queue, then
W on ``webhook``), as the real job functions running in burst workers.

For each size N (ascending; subscribers are added up to N), ``--repeat`` rounds, each:
1. naive baseline, a short run: one RQ job per recipient through the same job functions
   (a new SMTP connection per message, a new HTTP client per webhook) on a sample;
2. raw capacity, a short run: bare aiosmtplib / httpx clients blasting pre-rendered
   messages with the workers' concurrency, no queue, no rendering, no ledger;
3. ours: ``fan_out_alert`` then the batch jobs, a fresh alert each round.
Baselines are interleaved with ours, so a busy moment on the shared cores hits both; the
ratios are given per round and as median and spread.

Printed: every run's rate per channel, the median and the worst, the flatness (median at
the largest size / median at the smallest), any run slower than half its median (a
stall), what arrived (mail counted by the sink; webhooks counted by ``webhook-id`` in
nginx's log, so a request sent twice shows as a duplicate), worker RSS after the first
job and at peak, Redis memory added per recipient. ``RESULT {...}``: valid JSON (null,
never NaN). The bench stops within ``--budget`` seconds with a message saying where, and
still prints what it measured. ``--stock-worker`` runs RQ's own SimpleWorker instead of
ours, which reproduces the ~60 s stall on stopping a worker.
Exit codes: 0 complete and everything arrived exactly once; 1 a delivery missing or
doubled; 2 the budget ran out.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from common import HttpSink, SmtpSink, WorkerPool, machine, redis_server
from figures import (
    Budget,
    OutOfTime,
    key_bytes,
    median,
    num,
    report,
    settled,
    spread,
    used_memory,
)
from raw import in_processes, split
from redis import Redis

from sorawatch.commands import endpoints
from sorawatch.events import EventLog
from sorawatch.keys import Keys
from sorawatch.projections import ledger
from sorawatch.projections._common import dumps
from sorawatch.settings import (
    DataSettings,
    Settings,
    SmtpSettings,
    WebhookSettings,
    WebSettings,
    WorkerSettings,
)
from sorawatch.testing.alerts import raise_alert
from sorawatch.workers import channels, fanout
from sorawatch.workers.retry import enqueue_delivery
from sorawatch.workers.webhook import message_id

LANGS = ("ar", "ar", "en", "both")  # half Arabic, a quarter English, a quarter both


def make_settings(redis_url: str, tmp: Path, smtp_port: int, args: argparse.Namespace) -> Settings:
    return dataclasses.replace(
        Settings(),
        data=DataSettings(dir=str(tmp / "data")),
        smtp=SmtpSettings(
            host="127.0.0.1",
            port=smtp_port,
            concurrency=args.smtp_concurrency,
            from_="Sorawatch <alerts@watch.example.test>",
        ),
        web=WebSettings(base_url="https://watch.example.test", secret="bench-secret"),
        webhooks=WebhookSettings(allow_private=True, concurrency=args.hook_concurrency),
        workers=WorkerSettings(batch_size=args.batch),
    ).with_redis_url(redis_url)


# -- seeding ------------------------------------------------------------------------


def seed_subscribers(redis: Redis, keys: Keys, start: int, stop: int) -> None:
    """Subscribers ``start`` to ``stop`` - 1, confirmed, wanting every topic, written
    straight into the projection (the same records ``subscribers._store`` writes): the
    bench is about delivery."""
    ns = keys.projection("subscribers")
    with redis.pipeline(transaction=False) as pipe:
        for i in range(start, stop):
            email = f"user{i:07d}@example.test"
            record = {
                "email": email, "lang": LANGS[i % 4], "topics": ["status", "pricing", "partnership"],
                "kinds": ["change", "news"], "status": "confirmed",
                "requested_at": "2025-01-01T00:00:00Z", "confirmed_at": "2025-01-01T00:00:00Z",
                # No daily cap: the bench mails the same people many alerts in one day.
                "max_per_day": 0,
            }  # fmt: skip
            pipe.set(f"{ns}:s:{email}", dumps(record))
            pipe.zadd(f"{ns}:all", {email: 0})
            pipe.zadd(f"{ns}:status:confirmed", {email: 0})
            for topic in ("status", "pricing", "partnership"):
                for kind in ("change", "news"):
                    pipe.zadd(f"{ns}:want:{topic}:{kind}", {email: 0})
            if i % 2000 == 1999:
                pipe.execute()
        pipe.execute()


def seed_webhooks(log: EventLog, rx: HttpSink, m: int, first: int = 0) -> list[str]:
    """Endpoints ``first`` .. ``m - 1`` (``/h/<i>`` on the receiver); their ids."""
    return [
        endpoints.register(log, rx.url(f"/h/{i}"), allow_private=True)[0].id
        for i in range(first, m)
    ]


# -- the measured paths -----------------------------------------------------------------


def prerendered_mail(settings: Settings, alert: dict[str, Any], n: int) -> list[tuple[str, bytes]]:
    from sorawatch.workers import email as email_jobs

    pages = {p: email_jobs.render_alert(alert, p, settings.web.public_url) for p in ("ar", "en")}
    out = []
    for i in range(n):
        rcpt = f"raw{i:06d}@example.test"
        page = pages["ar" if i % 2 else "en"]
        msg = email_jobs.compose(
            settings=settings, recipient=rcpt, subject=page.subject, text=page.text,
            html=page.html, message_key=rcpt, unsubscribe="https://watch.example.test/u/x",
        )  # fmt: skip
        out.append((rcpt, msg.as_bytes()))
    return out


def prerendered_hook(alert: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    from datetime import UTC, datetime

    from sorawatch.workers import webhook as hook_jobs

    body = json.dumps(hook_jobs.payload(alert), ensure_ascii=False, separators=(",", ":"))
    headers = hook_jobs.sign("whsec_" + "A" * 32, "msg_raw", body, datetime.now(UTC))
    headers["content-type"] = "application/json"
    return body.encode(), headers


def enqueue_naive(log: EventLog, settings: Settings, alert_id: str, channel: str,
                  recipients: list[str]) -> None:  # fmt: skip
    """One job per recipient through the real job function (a batch of one)."""
    func = channels.get(channel).func
    with log.redis.pipeline(transaction=False) as pipe:
        for i, r in enumerate(recipients):
            jid = f"naive-{channel}-{alert_id}-{i}"
            enqueue_delivery(log.redis, settings, channel, func, (alert_id, [r], 0), jid,
                             pipeline=pipe)  # fmt: skip
            if i % 500 == 499:
                pipe.execute()
        pipe.execute()


def breakdown(redis: Redis, keys: Keys, alert_id: str, log_before: int) -> dict[str, int]:
    """Where the bytes an alert's delivery left in Redis are."""
    ledger_ns = keys.projection("ledger")
    return {
        "outcomes": key_bytes(redis, f"{ledger_ns}:o:{alert_id}:*"),
        "counts": key_bytes(redis, f"{ledger_ns}:c:{alert_id}:*"),
        "sent_marks": key_bytes(redis, keys.sent_marks(alert_id, "*")),
        "log": int(redis.memory_usage(keys.events, samples=0) or 0) - log_before,
        "rq_jobs_1h": key_bytes(redis, f"rq:*{alert_id}*"),
    }


def sent(redis: Redis, keys: Keys, alert_id: str, channel: str) -> int:
    """Recipients of an alert recorded sent (ledger counts, else the marks)."""
    counts = ledger.counts(redis, keys, alert_id, channel)
    return counts.get("sent", 0) or int(redis.hlen(keys.sent_marks(alert_id, channel)))


@dataclasses.dataclass
class World:
    args: argparse.Namespace
    settings: Settings
    redis: Redis
    log: EventLog
    sink: SmtpSink
    rx: HttpSink
    hook_ids: list[str]
    budget: Budget

    def pool(self, channel: str) -> tuple[float, list[dict[str, Any]]]:
        self.budget.need(5, f"the {channel} workers")
        pool = WorkerPool(self.settings, [channel], self.args.w, stock=self.args.stock_worker)
        try:
            return pool.run(timeout=self.budget.left())
        except TimeoutError as exc:
            raise OutOfTime(f"the {channel} workers: {exc}") from None

    def hook_arrivals(self, alert_id: str) -> tuple[int, int]:
        """Requests nginx logged for ``alert_id``'s webhook ids: (all, distinct)."""
        wanted = {message_id(alert_id, h) for h in self.hook_ids}
        settled(self.rx.count)
        got = [hook for _, hook in self.rx.arrivals() if hook in wanted]
        return len(got), len(set(got))


def naive_round(world: World, k: int) -> tuple[float, float]:
    """One short naive run per channel on a sample; returns (email/s, webhook/s)."""
    args, log = world.args, world.log
    alert_id = f"al_naive{k}"
    raise_alert(log, alert_id=alert_id)
    ne = min(args.sizes[0], args.naive)
    nh = min(args.m, max(args.naive // 5, 1))
    enqueue_naive(
        log, world.settings, alert_id, "email", [f"user{i:07d}@example.test" for i in range(ne)]
    )
    secs, _ = world.pool("email")
    email_rate = sent(world.redis, log.keys, alert_id, "email") / secs
    enqueue_naive(log, world.settings, alert_id, "webhook", world.hook_ids[:nh])
    secs, _ = world.pool("webhook")
    hook_rate = sent(world.redis, log.keys, alert_id, "webhook") / secs
    return email_rate, hook_rate


def raw_round(world: World, mails: list[tuple[str, bytes]], hook: tuple[bytes, dict[str, str]],
              urls: list[str]) -> tuple[float, float]:  # fmt: skip
    w, args = world.args.w, world.args
    world.budget.need(10, "the raw clients")
    smtp = in_processes("raw_smtp", [(world.sink.port, part, args.smtp_concurrency)
                                     for part in split(mails, w)], world.budget.left())  # fmt: skip
    http = in_processes("raw_http", [(part, hook[0], hook[1], args.hook_concurrency)
                                     for part in split(urls, w)], world.budget.left())  # fmt: skip
    return smtp, http


def our_run(world: World, size: int, rep: int) -> dict[str, Any]:
    redis, log, keys = world.redis, world.log, world.log.keys
    alert_id = f"al_n{size}_r{rep}"
    alert, _ = raise_alert(log, alert_id=alert_id)
    memory_before = used_memory(redis)
    log_before = int(redis.memory_usage(keys.events, samples=0) or 0)
    lines_unsettled = world.rx.count()  # how the old bench took its mark: see "log_lines"
    mail_before = settled(world.sink.count)
    t = time.perf_counter()
    counts = fanout.fan_out_alert(log, alert, world.settings)
    fan_secs = time.perf_counter() - t
    email_secs, email_stats = world.pool("email")
    hook_secs, hook_stats = world.pool("webhook")
    mails = settled(world.sink.count) - mail_before
    requests, distinct = world.hook_arrivals(alert_id)
    log_lines = world.rx.count() - lines_unsettled
    got_email, got_hook = (
        sent(redis, keys, alert_id, "email"),
        sent(redis, keys, alert_id, "webhook"),
    )
    stats = email_stats + hook_stats
    where = breakdown(redis, keys, alert_id, log_before)
    memory_after = used_memory(redis)
    return {
        "redis_mb": [memory_before / 2**20, memory_after / 2**20],
        "bytes_per_recipient": {k: v / max(size, 1) for k, v in where.items()},
        "size": size, "run": rep + 1, "planned": counts, "fanout_s": fan_secs,
        "email": {"sent": got_email, "seconds": email_secs, "rate": got_email / email_secs,
                  "arrived": mails},
        "webhook": {"sent": got_hook, "seconds": hook_secs, "rate": got_hook / hook_secs,
                    "arrived": requests, "distinct": distinct, "log_lines": log_lines},
        "first_rss_mb": max(s["first_rss_kb"] for s in email_stats) / 1024,
        "peak_rss_mb": max(s["peak_kb"] for s in stats) / 1024,
        "redis_bytes_per_recipient": (memory_after - memory_before) / max(size, 1),
        "exact": got_email == mails == size and got_hook == requests == distinct == len(world.hook_ids),
    }  # fmt: skip


def show_run(r: dict[str, Any]) -> None:
    e, h = r["email"], r["webhook"]
    print(f"  N={r['size']:,} run {r['run']}: email {e['sent']:,} in {e['seconds']:.2f} s = "
          f"{e['rate']:,.0f}/s (sink got {e['arrived']:,}); webhooks {h['sent']:,} in "
          f"{h['seconds']:.2f} s = {h['rate']:,.0f}/s (receiver got {h['arrived']:,} requests, "
          f"{h['distinct']:,} distinct ids, {h['log_lines']:,} log lines since a mark taken without "
          f"waiting for nginx's buffered log); fan-out {r['fanout_s']:.2f} s; worker RSS "
          f"{r['first_rss_mb']:.0f} MB after the first job, peak {r['peak_rss_mb']:.0f} MB; "
          f"Redis {r['redis_mb'][0]:,.0f} -> {r['redis_mb'][1]:,.0f} MB, "
          f"+{r['redis_bytes_per_recipient']:.0f} B per subscriber ("
          + ", ".join(f"{k} {v:.0f}" for k, v in r["bytes_per_recipient"].items()) + ")"
          + ("" if r["exact"] else "  ** NOT EXACTLY ONCE **"), flush=True)  # fmt: skip


def summarise(runs: list[dict[str, Any]], base: dict[str, list[float]],
              pairs: list[dict[str, float]]) -> dict[str, Any]:  # fmt: skip
    sizes: dict[str, Any] = {}
    stalls: list[dict[str, Any]] = []
    for size in sorted({r["size"] for r in runs}):
        mine = [r for r in runs if r["size"] == size]
        entry: dict[str, Any] = {"runs": len(mine)}
        for channel in ("email", "webhook"):
            rates = [r[channel]["rate"] for r in mine]
            mid = statistics.median(rates)
            entry[channel] = {"median": num(mid), "worst": num(min(rates)),
                              "best": num(max(rates)), "runs": [num(x) for x in rates]}  # fmt: skip
            for r in mine:
                if r[channel]["rate"] < mid / 2:
                    stalls.append({"size": size, "channel": channel, "run": r["run"],
                                   "rate": num(r[channel]["rate"]), "median": num(mid),
                                   "seconds": num(r[channel]["seconds"], 2)})  # fmt: skip
        entry["peak_rss_mb"] = num(max(r["peak_rss_mb"] for r in mine))
        entry["first_rss_mb"] = num(max(r["first_rss_mb"] for r in mine))
        entry["redis_bytes_per_recipient"] = num(
            median([r["redis_bytes_per_recipient"] for r in mine])
        )
        sizes[str(size)] = entry
    flatness: dict[str, Any] = {"email": None, "webhook": None}
    keys_ = sorted(sizes, key=int)
    if len(keys_) > 1:
        for channel in flatness:
            lo, hi = sizes[keys_[0]][channel]["median"], sizes[keys_[-1]][channel]["median"]
            flatness[channel] = num(hi / lo, 3) if lo and hi else None
    baselines = {name: {"median": num(median(v), 1), "min": num(min(v), 1) if v else None,
                        "max": num(max(v), 1) if v else None, "runs": len(v)}
                 for name, v in base.items()}  # fmt: skip
    ratios: dict[str, Any] = {}
    for name in ("email_vs_naive", "webhook_vs_naive", "email_vs_raw", "webhook_vs_raw"):
        values = [p[name] for p in pairs if name in p and math.isfinite(p[name])]
        ratios[name] = {"median": num(median(values), 2), "min": num(min(values), 2) if values else None,
                        "max": num(max(values), 2) if values else None, "rounds": len(values)}  # fmt: skip
    return {"sizes": sizes, "flatness": flatness, "stalls": stalls, "baselines": baselines,
            "ratios": ratios}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000", help="email subscribers, comma-separated")
    parser.add_argument("--n", type=int, help="one size (same as --sizes N)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per size")
    parser.add_argument("--m", type=int, default=1_000, help="webhooks")
    parser.add_argument(
        "--m-per-n", type=float, default=0.0,
        help="webhooks per email subscriber at each size (M grows with N); 0: M fixed",
    )  # fmt: skip
    parser.add_argument("--w", type=int, default=2, help="worker processes")
    parser.add_argument(
        "--naive", type=int, default=300, help="naive sample per round (emails; /5 hooks)"
    )
    parser.add_argument("--batch", type=int, default=WorkerSettings().batch_size)
    parser.add_argument("--smtp-concurrency", type=int, default=SmtpSettings().concurrency)
    parser.add_argument("--hook-concurrency", type=int, default=WebhookSettings().concurrency)
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--skip-raw", action="store_true")
    parser.add_argument("--budget", type=float, default=900.0, help="seconds for the whole bench")
    parser.add_argument(
        "--stock-worker",
        action="store_true",
        help="RQ's SimpleWorker, not ours (reproduces the 60 s stop stall)",
    )
    parser.add_argument("--quick", action="store_true", help="sizes 1000, M=100, naive 100, 2 runs")
    args = parser.parse_args()
    if args.n:
        args.sizes = str(args.n)
    if args.quick:
        args.sizes, args.m, args.naive, args.repeat = "1000", 100, 100, 2
    args.sizes = sorted({int(x.replace("_", "")) for x in str(args.sizes).split(",") if x.strip()})
    budget = Budget(args.budget)
    print(f"fanout bench: sizes {', '.join(f'{n:,}' for n in args.sizes)} x {args.repeat} runs, "
          f"M={f'N x {args.m_per_n:g}' if args.m_per_n else args.m} webhooks, W={args.w} workers; batch {args.batch}, smtp concurrency "
          f"{args.smtp_concurrency}, webhook concurrency {args.hook_concurrency}; budget "
          f"{args.budget:.0f} s{'; stock RQ worker' if args.stock_worker else ''}\n  {machine()}")  # fmt: skip
    runs: list[dict[str, Any]] = []
    base: dict[str, list[float]] = {"naive_email": [], "naive_webhook": [], "raw_smtp": [],
                                    "raw_http": []}  # fmt: skip
    pairs: list[dict[str, float]] = []
    extra: dict[str, Any] = {}
    complete, stopped = True, None
    with tempfile.TemporaryDirectory(prefix="sw-bench-") as tmpdir:
        tmp = Path(tmpdir)
        with redis_server(tmp / "redis") as server, SmtpSink(tmp / "smtp") as sink, \
                HttpSink(tmp / "nginx") as rx:  # fmt: skip
            settings = make_settings(server.url, tmp, sink.port, args)
            redis = Redis.from_url(server.url)
            log = EventLog(redis, Keys(settings.redis.prefix))
            hook_ids = seed_webhooks(log, rx, 0 if args.m_per_n else args.m)
            world = World(args, settings, redis, log, sink, rx, hook_ids, budget)
            try:
                w = args.w
                left = budget.left
                ceil_smtp = in_processes("ceiling_smtp", [(sink.port, 20_000 // w, 4)] * w, left())
                ceil_http = in_processes("ceiling_http", [(rx.port, 40_000 // w, 4)] * w, left())
                extra.update(ceiling_smtp=num(ceil_smtp), ceiling_http=num(ceil_http))
                print(f"  sink ceilings: smtp-sink {ceil_smtp:,.0f} msg/s, nginx "
                      f"{ceil_http:,.0f} req/s (raw-socket pipelining clients)")  # fmt: skip
                alert, _ = raise_alert(log, alert_id="al_raw")
                mails = prerendered_mail(settings, alert, min(args.sizes[0], 2000))
                hook = prerendered_hook(alert)
                urls = [rx.url(f"/h/{i}") for i in range(1000)]
                seeded, k = 0, 0
                for size in args.sizes:
                    t = time.perf_counter()
                    budget.need(size / 20_000, f"seeding {size:,} subscribers")
                    seed_subscribers(redis, log.keys, seeded, size)
                    seeded = size
                    if args.m_per_n and round(size * args.m_per_n) > len(world.hook_ids):
                        more = round(size * args.m_per_n)
                        world.hook_ids += seed_webhooks(log, rx, more, len(world.hook_ids))
                    print(f"  N={size:,}: subscribers seeded in {time.perf_counter() - t:.1f} s; "
                          f"Redis {used_memory(redis) / 2**20:,.0f} MB", flush=True)  # fmt: skip
                    for rep in range(args.repeat):
                        pair: dict[str, float] = {}
                        if not args.skip_naive:
                            k += 1
                            ne, nh = naive_round(world, k)
                            base["naive_email"].append(ne)
                            base["naive_webhook"].append(nh)
                            pair.update(naive_email=ne, naive_webhook=nh)
                        if not args.skip_raw:
                            rs, rh = raw_round(world, mails, hook, urls)
                            base["raw_smtp"].append(rs)
                            base["raw_http"].append(rh)
                            pair.update(raw_smtp=rs, raw_http=rh)
                        r = our_run(world, size, rep)
                        runs.append(r)
                        show_run(r)
                        line = []
                        for ch, nv, rv in (("email", "naive_email", "raw_smtp"),
                                           ("webhook", "naive_webhook", "raw_http")):  # fmt: skip
                            for base_key in (nv, rv):
                                if base_key in pair and not pair[base_key]:
                                    line.append(f"{ch}: the {base_key} baseline sent nothing")
                            if pair.get(nv):
                                pair[f"{ch}_vs_naive"] = r[ch]["rate"] / pair[nv]
                                line.append(
                                    f"{ch} {pair[f'{ch}_vs_naive']:.1f}x naive ({pair[nv]:,.1f}/s)"
                                )
                            if pair.get(rv):
                                pair[f"{ch}_vs_raw"] = r[ch]["rate"] / pair[rv]
                                line.append(
                                    f"{ch} {pair[f'{ch}_vs_raw']:.0%} of raw ({pair[rv]:,.0f}/s)"
                                )
                        pairs.append(pair)
                        if line:
                            print("    same round: " + "; ".join(line), flush=True)
            except OutOfTime as exc:
                complete, stopped = False, str(exc)
                print(f"\nbench: STOPPED, time budget of {args.budget:.0f} s used up: {stopped}. "
                      "The figures below cover only the runs that finished.", flush=True)  # fmt: skip
    empty = {"sizes": {}, "flatness": {"email": None, "webhook": None}, "stalls": [],
             "baselines": {}, "ratios": {}}  # fmt: skip
    summary = summarise(runs, base, pairs) if runs else empty
    print("\nsummary (rates per second; flatness = median at the largest size / at the smallest):")
    for size, entry in summary["sizes"].items():
        for ch in ("email", "webhook"):
            e = entry[ch]
            print(f"  N={int(size):,} {ch:7}: runs {e['runs']}, median {e['median']:,}, worst "
                  f"{e['worst']:,}")  # fmt: skip
    print(f"  flatness: email {summary['flatness'].get('email')}, webhook "
          f"{summary['flatness'].get('webhook')} (target >= 0.85)")  # fmt: skip
    print(f"  stalls (a run below half its median): {len(summary['stalls'])}"
          + "".join(f"\n    {s}" for s in summary["stalls"]))  # fmt: skip
    for name, values in base.items():
        if values:
            print(f"  baseline {name}: {spread(values)}")
    for name, ratio in summary["ratios"].items():
        if ratio["rounds"]:
            print(f"  {name}: median {ratio['median']}, spread {ratio['min']}-{ratio['max']} "
                  f"over {ratio['rounds']} rounds")  # fmt: skip
    exact = all(r["exact"] for r in runs) if runs else None
    said = {True: "yes", False: "NO", None: "no run finished"}[exact]
    print(f"  every run delivered each mail and webhook exactly once: {said}")
    result = {**summary, "m": f"N x {args.m_per_n:g}" if args.m_per_n else args.m, "w": args.w, "repeat": args.repeat, "exactly_once": exact,
              "complete": complete, "stopped": stopped, "elapsed_s": num(budget.seconds - budget.left(), 1),
              **extra}  # fmt: skip
    return report(result, complete=complete, exact=exact)


if __name__ == "__main__":
    raise SystemExit(main())

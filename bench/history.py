"""Replay Sora's labelled history (``bench/history/``) through the real system, date by date.

    python bench/history.py              # the whole corpus (several minutes)
    python bench/history.py --subset     # a fixed handful of events and noise (under a minute)
    python bench/history.py --keep       # keep Redis's files, the mails and webhooks to look at
    python bench/history.py --json-only  # only the RESULT line

Each step sets ``SORAWATCH_NOW`` to its instant (a few minutes after the items it
reveals are published), shows every outlet's feed as it stood then (the latest 20
items, over HTTP on 127.0.0.1), and runs the real ``sorawatch watch --once`` and
``sorawatch work --burst`` as subprocesses against a Redis of its own, a real SMTP
server (aiosmtpd) and a webhook receiver. Recipients: an English all-topics subscriber,
an Arabic all-topics one, a both-languages status-only change-only one, and a webhook.
Every feed's first poll is a baseline, so each starts with a pre-history item, polled
once a day before the first real item.

Then every mail and webhook is attributed to a corpus item (``history_score.attribute``)
and every status change to the item that caused it, and it prints a table per event,
the totals, the final ``sorawatch state --json`` against the last event's truth, and a
last line ``RESULT {json}``. The ``fingerprint`` in it hashes what was delivered to whom
about which item, and every status change: two runs of the same input must match.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from common import redis_server
from history_score import Delivery, Score, figures, mail_delivery, score, webhook_delivery
from history_world import (
    AR,
    CORPUS,
    EN,
    HOOK,
    RECIPIENTS,
    STATUS,
    WEBHOOK_SECRET,
    Corpus,
    Feeds,
    World,
    day_steps,
    load_corpus,
    steps,
    subset,
)

from sorawatch.testing.feeds import FeedServer
from sorawatch.testing.http import HttpReceiver
from sorawatch.testing.smtp import SmtpServer


def replay(corpus: Corpus, folder: Path, *, by_day: bool, quiet: bool) -> dict[str, Any]:
    """Run the replay in ``folder``; returns the figures (``history_score.figures``)."""
    started = time.monotonic()
    first = corpus.items[0].at
    start = datetime(first.year, first.month, first.day, tzinfo=UTC) - timedelta(days=1)
    instants = day_steps(corpus.items) if by_day else steps(corpus.items)
    with (
        redis_server(folder / "redis") as redis,
        FeedServer() as feed_server,
        SmtpServer() as smtp,
        HttpReceiver() as hooks,
    ):
        feeds = Feeds(feed_server, corpus, start)
        world = World(folder, redis.url, feeds, smtp, hooks)
        world.write_config()
        world.enrol(start)
        feeds.show(start)  # the pre-history items only: every feed's baseline
        world.sorawatch("watch", "--once", now=start)
        world.sorawatch("work", "--burst", now=start)
        hooks_seen = 0
        deliveries: list[Delivery] = []
        for n, now in enumerate(instants, 1):
            feeds.show(now)
            world.sorawatch("watch", "--once", now=now)
            world.sorawatch("work", "--burst", now=now)
            # Webhooks are verified as they arrive, as a consumer does: the signature's
            # timestamp is the real time, and verifiers refuse one older than 5 minutes.
            requests = hooks.to("/hook")
            for request in requests[hooks_seen:]:
                deliveries.append(webhook_delivery(request.body, request.headers, WEBHOOK_SECRET))
            hooks_seen = len(requests)
            if not quiet and (n % 10 == 0 or n == len(instants)):
                print(f"  step {n}/{len(instants)} at {now:%Y-%m-%d %H:%M}, "
                      f"{len(smtp.messages)} mails, {len(hooks.requests)} webhooks so far",
                      file=sys.stderr, flush=True)  # fmt: skip
        # A week after the last news: the digests and catch-ups still due go out.
        flush = instants[-1] + timedelta(days=8)
        world.sorawatch("digest", "--now", flush.isoformat(), now=flush)
        log = world.events()
        state = world.state()
        outbox = folder / "outbox"
        outbox.mkdir(exist_ok=True)
        for i, received in enumerate(smtp.messages):
            (outbox / f"{i:04d}.eml").write_bytes(received.raw)
            deliveries += mail_delivery(received)
        for i, request in enumerate(hooks.to("/hook")):
            (outbox / f"{i:04d}.webhook.json").write_bytes(request.body)
    (folder / "state.json").write_text(json.dumps(state, ensure_ascii=False, indent=2), "utf-8")
    result = score(corpus, deliveries, log)
    out = figures(result, state)
    out["steps"] = len(instants) + 1
    out["seconds"] = round(time.monotonic() - started, 1)
    out["_score"] = result
    out["_state"] = state
    return out


def table(figs: dict[str, Any]) -> list[str]:
    """The per-event table, the no-change items that reached anyone, and the totals."""
    s: Score = figs["_score"]
    corpus = s.corpus
    false_by_event = Counter(f["event"] for f in s.false_changes if f["event"])
    lines = [
        "| event | date | what happened | items | en | ar | status | webhook | status changes |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for event in corpus.events:
        got = s.per_event.get(event.id, Counter())
        items = sum(1 for i in corpus.items if i.event == event.id)
        changes = ", ".join(
            v if v in event.status_ok else f"{v} (false)" for v in s.changes.get(event.id, [])
        )
        title = event.title if len(event.title) <= 60 else event.title[:57] + "..."
        lines.append(
            f"| {event.id} | {event.date} | {title} | {items} | {got[EN]} | {got[AR]} "
            f"| {got[STATUS]} | {got[HOOK]} | {changes or '-'} |"
        )
    lines += ["", "No-change items that reached someone:", "",
              "| item | date | kind | title | en | ar | status | webhook |",
              "| --- | --- | --- | --- | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for item in corpus.items:
        noise = s.per_noise.get(item.id)
        if noise:
            title = item.title if len(item.title) <= 60 else item.title[:57] + "..."
            lines.append(
                f"| {item.id} | {item.at:%Y-%m-%d} | {item.kind} | {title} | {noise[EN]} "
                f"| {noise[AR]} | {noise[STATUS]} | {noise[HOOK]} |"
            )
    noise_changes = [f for f in s.false_changes if not f["event"]]
    noise_by = ", ".join(f"{r} {figs['noise_deliveries'][r]}" for r in RECIPIENTS)
    lines += [
        "",
        f"events alerted (any recipient): {figs['events_alerted']} of {figs['events']}",
        f"recall (events reaching the English all-topics subscriber): {figs['recall_en']} "
        f"({figs['events_reaching_en']}/{figs['events']}; missed: "
        f"{', '.join(figs['missed_en']) or 'none'})",
        "deliveries per recipient: "
        + ", ".join(f"{r} {figs['deliveries'][r]}" for r in RECIPIENTS),
        f"mails per event to the English subscriber: {figs['mails_per_event_en']} "
        f"(about events, per event reached; all its mails / events: "
        f"{figs['en_mails_per_event_total']})",
        f"mails about items that change nothing: {figs['noise_mails']} ({noise_by}; "
        f"{figs['noise_items_alerted']} items)",
        f"status changes: {figs['status_changes']}, of which did not happen: "
        f"{figs['false_status_changes']} ({sum(false_by_event.values())} with a wrong value "
        f"for their event, {len(noise_changes)} from no-change items)",
        f"alerts raised: {figs['alerts']}; deliveries not attributed to a corpus item: "
        f"{figs['unattributed']}; webhooks failing verification: {figs['unverified_webhooks']}",
    ]
    for label, c in figs["cadenced"].items():
        lines.append(
            f"{label}: {c['mails']} mails, at most {c['most_in_a_day']} a day and "
            f"{c['most_in_a_week']} a week; events reaching en but not told: "
            f"{', '.join(c['missing']) or 'none'}"
            + (f"; {c['catch_ups']} catch-up digests (cap {c['cap']} a day)" if "cap" in c else "")
        )
    for f in s.false_changes:
        lines.append(f"  false status change: {f['value']} from {f['item']} ({f['why']})")
    lines.append(
        f"final state vs the truth after {figs['truth_after']}: "
        + ("matches" if figs["state_matches"] else f"{len(figs['state_mismatches'])} differences")
    )
    lines += [f"  {m}" for m in figs["state_mismatches"]]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="folder of the two files")
    parser.add_argument("--subset", action="store_true", help="the fixed small subset")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--json-only", action="store_true", help="print only the RESULT line")
    parser.add_argument("--by-day", action="store_true", help="one step per date, at 23:59")
    args = parser.parse_args(argv)
    corpus = load_corpus(args.corpus)
    if args.subset:
        corpus = subset(corpus)
    folder = Path(tempfile.mkdtemp(prefix="sorawatch-history-"))
    quiet = args.json_only
    if not quiet:
        print(f"replaying {len(corpus.items)} items, {len(corpus.events)} events "
              f"({'subset' if args.subset else 'whole corpus'}) in {folder}",
              file=sys.stderr, flush=True)  # fmt: skip
    try:
        figs = replay(corpus, folder, by_day=args.by_day, quiet=quiet)
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    if not quiet:
        print("\n".join(table(figs)))
        print(f"{figs['steps']} steps in {figs['seconds']} s")
        if args.keep:
            print(
                f"kept: {folder} (outbox/ holds the mails and webhooks, state.json the state; "
                f"Redis's append-only files are in redis/: redis-server --dir {folder}/redis "
                "--appendonly yes --port 6390, then SORAWATCH_REDIS_URL=redis://127.0.0.1:6390/0 "
                f"SORAWATCH_CONFIG={folder}/sorawatch.toml sorawatch state)"
            )
    public = {k: v for k, v in figs.items() if not k.startswith("_")}
    public["subset"] = args.subset
    print("RESULT " + json.dumps(public, ensure_ascii=False, sort_keys=True, allow_nan=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Measure the classifier on a labelled corpus: quality figures and items per second.

    python bench/classify_eval.py [PATH ...]

PATH defaults to ../shared/corpus/dev.jsonl beside the repository; a folder in the
format of bench/history/ (items.jsonl and events.jsonl) is read too, each item's status
right when it is the one the item reports or one its event accepts. Prints relevance
precision and recall, per-topic precision/recall/F1 per language, status accuracy on
items that state a status, `released` said of negated or hedged items, the items it
got wrong, and items per second on one core, each beside a baseline measured in the
same run (a bare keyword match; the cost of normalising the text alone). Exits 0.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from sorawatch.arabic import normalize_for_matching
from sorawatch.vocabulary import TOPICS
from sorawatch.watcher.classify import default_classifier

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO.parent / "shared" / "corpus" / "dev.jsonl"

TIMED_SECONDS = 2.0


# Kinds of history items that report nothing new: a released said of them is wrong.
NO_NEWS = {"background", "tutorial", "roundup", "oped", "rumour", "denial", "analysis"}


def _lines(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def load(paths: list[Path]) -> list[dict[str, Any]]:
    rows = []
    for path in paths:
        if path.is_dir():
            rows.extend(history(path))
        else:
            rows.extend(_lines(path))
    return rows


def history(folder: Path) -> list[dict[str, Any]]:
    """The labelled history as rows of the corpus format (no topic labels)."""
    events = {e["id"]: e for e in _lines(folder / "events.jsonl")}
    rows = []
    for item in _lines(folder / "items.jsonl"):
        accepted = [item["status"], *events[item["event"]].get("status_ok", [])] if item.get(
            "status") else []  # fmt: skip
        relevant = {"other_sora": False, "competitor": None}.get(item["kind"], True)
        rows.append({**item, "relevant": relevant, "status_ok": accepted,
                     "first_party": item["outlet"] == "openai"})  # fmt: skip
    return rows


def ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def fmt(value: float | None) -> str:
    return "  n/a" if value is None else f"{value:5.3f}"


def f1(tp: int, fp: int, fn: int) -> tuple[float | None, float | None, float | None]:
    p, r = ratio(tp, tp + fp), ratio(tp, tp + fn)
    if p is None or r is None:
        return p, r, None
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def keyword_baseline(row: dict[str, Any]) -> bool:
    text = normalize_for_matching(f"{row.get('title') or ''} {row.get('summary') or ''}")
    return "sora" in text or "سورا" in text


def evaluate(rows: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    classifier = default_classifier()
    lines: list[str] = []
    wrong: list[dict[str, Any]] = []
    rel = {"tp": 0, "fp": 0, "fn": 0}
    base = {"tp": 0, "fp": 0, "fn": 0}
    topic_counts: dict[tuple[str, str], dict[str, int]] = defaultdict(
        lambda: {"tp": 0, "fp": 0, "fn": 0}
    )
    status_total = status_ok = released_wrong = 0
    for row in rows:
        got = classifier.classify(
            row.get("title") or "", row.get("summary") or "", row.get("lang"),
            first_party=bool(row.get("first_party")),
        ).to_dict()  # fmt: skip
        gold = row.get("relevant")
        problems = []
        if gold is not None:
            for counts, said in ((rel, got["relevant"]), (base, keyword_baseline(row))):
                counts["tp"] += said and gold
                counts["fp"] += said and not gold
                counts["fn"] += gold and not said
            if got["relevant"] != gold:
                problems.append(f"relevant {gold} != {got['relevant']}")
            want, said_topics = set(row.get("topics") or []), set(got["topics"])
            for topic in TOPICS if "topics" in row else ():
                c = topic_counts[(row["lang"], topic)]
                c["tp"] += topic in want and topic in said_topics
                c["fp"] += topic not in want and topic in said_topics
                c["fn"] += topic in want and topic not in said_topics
            if "topics" in row and want != said_topics:
                problems.append(f"topics {sorted(want)} != {sorted(said_topics)}")
        accepted = row.get("status_ok") or []
        status = got["facts"].get("status")
        if accepted:
            status_total += 1
            status_ok += status in accepted
            if status not in accepted:
                problems.append(f"status {status} not in {accepted}")
            if status == "released" and "released" not in accepted:
                released_wrong += 1
        elif row.get("kind") in NO_NEWS and status == "released":
            released_wrong += 1
            problems.append(f"released said of a {row['kind']} item")
        if problems:
            wrong.append({"id": row.get("id"), "problems": problems, "facts": got["facts"]})

    p, r, _ = f1(rel["tp"], rel["fp"], rel["fn"])
    bp, br, _ = f1(base["tp"], base["fp"], base["fn"])
    lines.append(
        f"items: {len(rows)} (relevance scored on {sum(r.get('relevant') is not None for r in rows)})"
    )
    lines.append(
        f"relevance   precision {fmt(p)}  recall {fmt(r)}   (keyword baseline: precision {fmt(bp)}  recall {fmt(br)})"
    )
    for lang in sorted({lang for lang, _ in topic_counts}):
        for topic in TOPICS:
            c = topic_counts[(lang, topic)]
            tp, fp, fn = c["tp"], c["fp"], c["fn"]
            tp_, tr_, tf_ = f1(tp, fp, fn)
            lines.append(
                f"topic {lang} {topic:<12} precision {fmt(tp_)}  recall {fmt(tr_)}  F1 {fmt(tf_)}   (tp {tp}, fp {fp}, fn {fn})"
            )
    lines.append(
        f"status fact correct: {status_ok}/{status_total} = {fmt(ratio(status_ok, status_total))}"
    )
    lines.append(f"'released' said of negated, hedged or background items: {released_wrong}")
    return lines, wrong


def speed(rows: list[dict[str, Any]]) -> list[str]:
    """Items per second on one core, beside the cost of normalising alone."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    classifier = default_classifier()
    items = [(r.get("title") or "", r.get("summary") or "", r.get("lang") or "en") for r in rows]

    def rate(work: Any) -> tuple[float, float]:
        """(items per wall-clock second, items per CPU second): a busy machine shows apart."""
        done, wall, cpu = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - wall < TIMED_SECONDS:
            for item in items:
                work(*item)
            done += len(items)
        return done / (time.perf_counter() - wall), done / (time.process_time() - cpu)

    full, full_cpu = rate(classifier.classify)
    floor, _ = rate(lambda t, s, lang: normalize_for_matching(t + " " + s, lang))
    return [
        f"speed: {full:,.0f} items/s on one core ({full_cpu:,.0f} per CPU second; target 2,000)",
        f"       normalising alone: {floor:,.0f} items/s; classifying costs {floor / full:.1f}x that",
    ]


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or [DEFAULT_CORPUS]
    missing = [p for p in paths if not p.exists()]
    if missing:
        print(f"classify_eval: no corpus at {', '.join(map(str, missing))}", file=sys.stderr)
        return 0
    rows = load(paths)
    lines, wrong = evaluate(rows)
    print("\n".join(lines))
    print(f"misclassified: {len(wrong)}")
    for w in wrong:
        print(
            f"  {w['id']}: {'; '.join(w['problems'])}  facts={json.dumps(w['facts'], ensure_ascii=False)}"
        )
    print("\n".join(speed(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The world `history.py` replays Sora's history in: the corpus, the outlets' feeds, the
servers (feeds over HTTP, Redis, SMTP, a webhook receiver) and the real `sorawatch` CLI.

Everything listens on 127.0.0.1. The feeds are RSS 2.0, one per outlet, showing the
latest ``FEED_LENGTH`` items published up to the step's instant (ETag and 304 as a real
server does). Items listed in ``also_in`` appear in those outlets' feeds too, with the
same link (an aggregator).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from common import REPO

from sorawatch.testing.feeds import FeedServer, Route
from sorawatch.testing.http import HttpReceiver
from sorawatch.testing.smtp import SmtpServer

CORPUS = REPO / "bench" / "history"
FEED_LENGTH = 20  # items a feed shows, newest first, like most real RSS feeds
POLL_LAG = timedelta(minutes=5)  # a step polls this long after the items it reveals
PREFIX = "hist"
SECRET = "history-bench-secret-history-bench-secret"  # at least 32 characters
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"history-bench-webhook-secret!").decode()

# Recipients: (label, address, lang, topics, kinds)
EN, AR, STATUS, HOOK = "en", "ar", "status", "webhook"
SUBSCRIBERS = (
    (EN, "en-all@example.test", "en", "status,pricing,partnership", "change,news"),
    (AR, "ar-all@example.test", "ar", "status,pricing,partnership", "change,news"),
    (STATUS, "status-changes@example.test", "both", "status", "change"),
)
RECIPIENTS = (EN, AR, STATUS, HOOK)
# Subscribers on a cadence (issue "Digests, caps"): all topics and kinds, like `en`, heard
# of in a daily digest, a weekly one (Arabic), or at once but at most one alert a day.
DAILY, WEEKLY, CAPPED = "daily", "weekly", "capped"
CADENCED = (
    (DAILY, "daily@example.test", "en", ("--cadence", "daily")),
    (WEEKLY, "weekly@example.test", "ar", ("--cadence", "weekly")),
    (CAPPED, "capped@example.test", "en", ("--max-per-day", "1")),
)
CAP = 1

OUTLETS: dict[str, tuple[str, str, str]] = {  # outlet → (feed name, lang, site)
    "openai": ("OpenAI News", "en", "openai.com"),
    "techwire": ("TechWire", "en", "techwire.example"),
    "screenbiz": ("ScreenBiz", "en", "screenbiz.example"),
    "dailybrief": ("The Daily Brief", "en", "dailybrief.example"),
    "aitech": ("عالم الذكاء التقني", "ar", "aitech.example"),
    "arabiya": ("العربية اليوم", "ar", "arabiya.example"),
}
OFFICIAL = {"openai"}  # first-party outlets: `trust = "official"` when settings know it


@dataclass(frozen=True)
class Item:
    id: str
    at: datetime
    outlet: str
    also_in: tuple[str, ...]
    lang: str
    title: str
    summary: str
    event: str | None
    kind: str
    status: str | None

    @property
    def link(self) -> str:
        site = OUTLETS.get(self.outlet, (self.outlet, "en", f"{self.outlet}.example"))[2]
        return f"https://{site}/{self.at:%Y/%m/%d}/{self.id}"

    @property
    def outlets(self) -> tuple[str, ...]:
        return (self.outlet, *self.also_in)


@dataclass(frozen=True)
class Event:
    id: str
    date: str
    title: str
    topics: tuple[str, ...]
    status_ok: tuple[str, ...]
    version: str | None
    truth: dict[str, Any]


@dataclass
class Corpus:
    items: list[Item]
    events: list[Event]
    truth: dict[str, Any] | None = None  # the state after it all; None: the last event's
    by_link: dict[str, Item] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.items.sort(key=lambda i: (i.at, i.id))
        self.by_link = {normal_link(i.link): i for i in self.items}
        if self.truth is None and self.events:
            self.truth = self.events[-1].truth

    def event(self, event_id: str | None) -> Event | None:
        return next((e for e in self.events if e.id == event_id), None)


def normal_link(url: str) -> str:
    """A link as both sides can compare it: no scheme case, query, fragment or trailing /."""
    base = url.split("#", 1)[0].split("?", 1)[0].rstrip("/")
    scheme, sep, rest = base.partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme.lower()}{sep}{host.lower().removeprefix('www.')}{slash}{path}"


def _instant(text: str) -> datetime:
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def load_corpus(folder: Path = CORPUS) -> Corpus:
    """Read ``items.jsonl`` and ``events.jsonl`` (format: ``bench/history/README.md``)."""
    items = []
    for line in (folder / "items.jsonl").read_text("utf-8").splitlines():
        if not line.strip():
            continue
        raw = json.loads(line)
        items.append(
            Item(
                id=raw["id"], at=_instant(raw["at"]), outlet=raw["outlet"],
                also_in=tuple(raw.get("also_in") or ()), lang=raw["lang"], title=raw["title"],
                summary=raw.get("summary") or "", event=raw.get("event"),
                kind=raw.get("kind") or "", status=raw.get("status"),
            )
        )  # fmt: skip
    events = []
    for line in (folder / "events.jsonl").read_text("utf-8").splitlines():
        if not line.strip():
            continue
        raw = json.loads(line)
        events.append(
            Event(
                id=raw["id"], date=raw["date"], title=raw["title"],
                topics=tuple(raw.get("topics") or ()), status_ok=tuple(raw.get("status_ok") or ()),
                version=raw.get("version"), truth=raw.get("truth") or {},
            )
        )  # fmt: skip
    events.sort(key=lambda e: (e.date, e.id))
    known = {e.id for e in events}
    unknown = sorted({f"{i.id} → {i.event}" for i in items if i.event and i.event not in known})
    if unknown:
        raise ValueError(f"{folder}: items name events not in events.jsonl: {unknown[:5]}")
    return Corpus(items, events)


# The subset: a fixed handful of events (the first alert ever, the launch with its prices,
# the Disney deal and Disney's exit) and the first no-change item of a few kinds; small
# enough to replay in under a minute.
SUBSET_EVENTS = ("E01", "E06", "E18", "E21")
SUBSET_NOISE_KINDS = ("other_sora", "rumour", "background", "roundup", "tutorial")


def subset(corpus: Corpus) -> Corpus:
    """The fixed small corpus of ``--subset``: the items of ``SUBSET_EVENTS`` and one
    no-change item of each kind (the first of that kind)."""
    wanted = set(SUBSET_EVENTS)
    items = [i for i in corpus.items if i.event in wanted]
    for kind in SUBSET_NOISE_KINDS:
        noise = next((i for i in corpus.items if i.event is None and i.kind == kind), None)
        if noise is not None:
            items.append(noise)
    events = [e for e in corpus.events if e.id in wanted]
    return Corpus(items, events, truth=truth_of(corpus.events, wanted))


def truth_of(events: Sequence[Event], wanted: set[str]) -> dict[str, Any]:
    """The state that only the ``wanted`` events would make: each fact as the last wanted
    event that changed it left it (a fact changes where an event's truth differs from
    the one before it)."""
    out: dict[str, dict[str, Any]] = {"status": {}, "plans": {}, "partners": {}}
    before: dict[str, Any] = {}
    for event in events:
        if event.id in wanted:
            for kind, facts in out.items():
                old, new = before.get(kind) or {}, event.truth.get(kind) or {}
                for key in [*old, *(k for k in new if k not in old)]:
                    if old.get(key) == new.get(key):
                        continue
                    facts.pop(key, None)  # re-inserted last: the newest version stays last
                    if key in new:
                        facts[key] = new[key]
        before = event.truth
    return out


# -- feeds ------------------------------------------------------------------------------


def rss(outlet: str, items: Sequence[Item]) -> bytes:
    """An RSS 2.0 feed of ``items`` (newest first)."""
    name, lang, site = OUTLETS.get(outlet, (outlet, "en", f"{outlet}.example"))
    entries = "".join(
        f"<item><title>{escape(i.title)}</title><link>{escape(i.link)}</link>"
        f'<guid isPermaLink="true">{escape(i.link)}</guid>'
        f"<description>{escape(i.summary)}</description>"
        f"<pubDate>{format_datetime(i.at)}</pubDate></item>"
        for i in items
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>{escape(name)}</title><link>https://{site}/</link>"
        f"<description>{escape(name)}</description><language>{lang}</language>"
        f"{entries}</channel></rss>"
    ).encode()


def pre_history(outlet: str, at: datetime) -> Item:
    """An item that changes nothing and is not about Sora, for a feed's baseline poll."""
    lang = OUTLETS.get(outlet, (outlet, "en", ""))[1]
    title, summary = (
        ("نشرتنا الأسبوعية تعود بحلة جديدة", "أعدنا تصميم النشرة الأسبوعية لقرائنا.")
        if lang == "ar"
        else ("Our weekly newsletter has a new look", "We redesigned the weekly newsletter.")
    )
    return Item(f"pre-{outlet}", at, outlet, (), lang, title, summary, None, "pre", None)


class Feeds:
    """One RSS feed per outlet on a real HTTP server; ``show(now)`` updates them all."""

    def __init__(self, server: FeedServer, corpus: Corpus, start: datetime) -> None:
        self.server = server
        self.corpus = corpus
        outlets = {o for i in corpus.items for o in i.outlets}
        self.outlets = [o for o in OUTLETS if o in outlets] + sorted(outlets - set(OUTLETS))
        self.pre = {o: pre_history(o, start - timedelta(days=1)) for o in self.outlets}
        self.urls = {o: server.url(f"/{o}.xml") for o in self.outlets}

    def show(self, now: datetime) -> None:
        """Each feed lists its latest items published up to ``now``."""
        for outlet in self.outlets:
            items = [i for i in self.corpus.items if outlet in i.outlets and i.at <= now]
            shown = [*sorted(items, key=lambda i: (i.at, i.id), reverse=True), self.pre[outlet]]
            body = rss(outlet, shown[:FEED_LENGTH])
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            self.server.route(f"/{outlet}.xml", Route(body=body, etag=etag))

    def config(self) -> str:
        """The ``[[feeds]]`` tables; ``trust = "official"`` for first-party outlets when
        the settings have that key (the judgement being rewritten adds it)."""
        from sorawatch.settings import FeedSettings

        has_trust = "trust" in {f.name for f in dataclasses.fields(FeedSettings)}
        out = []
        for outlet in self.outlets:
            name, lang, _site = OUTLETS.get(outlet, (outlet, "en", ""))
            out += ["[[feeds]]", f"url = {json.dumps(self.urls[outlet])}",
                    f"name = {json.dumps(name, ensure_ascii=False)}", f'lang = "{lang}"',
                    "interval = 900"]  # fmt: skip
            if has_trust and outlet in OFFICIAL:
                out.append('trust = "official"')
            out.append("")
        return "\n".join(out)


def steps(items: Iterable[Item]) -> list[datetime]:
    """The instants to poll at: ``POLL_LAG`` after each publication, skipping a step that
    would reveal nothing its predecessor had not (items published within the lag)."""
    out: list[datetime] = []
    for at in sorted({i.at for i in items}):
        if out and at <= out[-1]:
            continue
        out.append(at + POLL_LAG)
    return out


def day_steps(items: Iterable[Item]) -> list[datetime]:
    """One step per publication date, at its last minute (``--by-day``)."""
    days = sorted({i.at.date() for i in items})
    return [datetime(d.year, d.month, d.day, 23, 59, tzinfo=UTC) for d in days]


# -- the servers and the CLI ------------------------------------------------------------


@dataclass
class World:
    folder: Path
    redis_url: str
    feeds: Feeds
    smtp: SmtpServer
    hooks: HttpReceiver
    config: Path = field(init=False)

    def __post_init__(self) -> None:
        self.config = self.folder / "sorawatch.toml"

    def write_config(self) -> None:
        self.config.write_text(
            f'[redis]\nurl = "{self.redis_url}"\nprefix = "{PREFIX}"\n\n'
            f'[smtp]\nhost = "127.0.0.1"\nport = {self.smtp.port}\n'
            'from = "Sorawatch <alerts@watch.example.test>"\n\n'
            f'[web]\nbase_url = "https://watch.example.test"\nsecret = "{SECRET}"\n\n'
            "[webhooks]\nallow_private = true\ntimeout = 10\nretry_schedule = [0, 0, 0]\n\n"
            "[workers]\nretry_schedule = [0, 0, 0]\n\n"
            # One feed at a time, in a fixed order: the log's order, hence every decision,
            # is the same in every run.
            "[watcher]\nconcurrency = 1\njitter = 0.0\nconnect_timeout = 10.0\n"
            "read_timeout = 30.0\n\n"
            f'[data]\ndir = "{self.folder / "data"}"\n\n' + self.feeds.config(),
            "utf-8",
        )

    def sorawatch(self, *args: str, now: datetime | None = None, stdin: str | None = None) -> str:
        """Run the real CLI; returns its stdout. Raises RuntimeError when it fails."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SORAWATCH_")}
        env["SORAWATCH_CONFIG"] = str(self.config)
        if now is not None:
            env["SORAWATCH_NOW"] = now.astimezone(UTC).isoformat().replace("+00:00", "Z")
        proc = subprocess.run(
            [sys.executable, "-m", "sorawatch.cli", *args],
            env=env, input=stdin, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(
                f"sorawatch {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
            )
        return proc.stdout

    def enrol(self, now: datetime) -> None:
        """The recipients: three confirmed subscribers and one webhook, and three
        subscribers on a cadence (``CADENCED``)."""
        for _label, address, lang, topics, kinds in SUBSCRIBERS:
            self.sorawatch("subscribe", address, "--lang", lang, "--topics", topics,
                           "--kinds", kinds, "--confirmed", now=now)  # fmt: skip
        for _label, address, lang, timing in CADENCED:
            self.sorawatch("subscribe", address, "--lang", lang, "--topics",
                           "status,pricing,partnership", "--kinds", "change,news",
                           *timing, "--confirmed", now=now)  # fmt: skip
        self.sorawatch("webhook", "add", self.hooks.url("/hook"), "--secret", WEBHOOK_SECRET,
                       "--lang", "both", now=now)  # fmt: skip

    def events(self) -> list[dict[str, Any]]:
        """The whole event log, through ``sorawatch events --json``."""
        out = self.sorawatch("events", "--json")
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def state(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.sorawatch("state", "--json"))
        return parsed

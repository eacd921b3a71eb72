"""Hostile feeds served over HTTP on 127.0.0.1 to the real watcher.

- a 50 MiB body (generated as it is sent, never stored): cut at the size cap with
  a clear error in feed health, and the polling process (the real ``sorawatch
  watch --once``) stays small: its peak RSS is compared with polling a small feed;
- a server that trickles one byte a second, in the body or in the headers: a
  timeout in feed health after a few seconds, not a poll held for hours;
- invalid UTF-8 and wrong declared encodings: parsed (the Arabic readable) or
  reported, never a crash;
- CR/LF (raw, as character references, as Unicode line breaks) and 10,000-character
  titles in relevant news: no line break in the event, and the mail that reaches
  subscribers has no injected header and one logical Subject (the email side alone
  is also ``tests/workers/test_email.py``);
- 10,000 items in one feed: all read, and a second poll of the same body appends
  nothing;
- dates in the years 1 and 9999, out of range after their offset, and garbage:
  ``published`` is null or valid ISO-8601, and the alerts, mail, status page and
  Atom feed built from them render.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import httpx
import pytest
from fastapi.testclient import TestClient
from redis import Redis

from sorawatch.events import Event, EventLog
from sorawatch.keys import Keys
from sorawatch.settings import FeedSettings, Settings
from sorawatch.testing.feeds import FeedServer, Route
from sorawatch.testing.smtp import SmtpServer
from sorawatch.watcher.classify import default_classifier
from sorawatch.watcher.fetch import make_client
from sorawatch.watcher.health import Schedule
from sorawatch.watcher.normalise import MAX_TITLE
from sorawatch.watcher.poll import PassSummary, Poller
from sorawatch.web.app import create_app
from tests import reliability as figures
from tests.reliability import Figures
from tests.watcher.recorded import recorded
from tests.workers.delivery_helpers import (
    failed_jobs,
    run_jobs,
    setup_runtime,
    subscribe,
    with_smtp,
)

pytestmark = pytest.mark.hostile

MIB = 1024 * 1024
RFC822 = format_datetime(datetime.now(UTC))  # recent: older news is recorded quietly
WEATHER = (
    "<item><title>Weather: sunny week ahead</title><link>https://w.example.test/1</link></item>"
)


# -- helpers ----------------------------------------------------------------------


def rss(items: str, *, encoding: str = "utf-8", lang: str = "en") -> str:
    """An RSS 2.0 document around ready-made ``<item>`` markup."""
    return (
        f'<?xml version="1.0" encoding="{encoding}"?><rss version="2.0"><channel>'
        f"<title>Hostile outlet</title><link>https://outlet.example.test/</link>"
        f"<description>x</description><language>{lang}</language>{items}</channel></rss>"
    )


def item(title: str, link: str, summary: str = "", date: str | None = RFC822) -> str:
    """One ``<item>``; ``title`` and ``summary`` are XML already (escape them yourself)."""
    when = f"<pubDate>{date}</pubDate>" if date is not None else ""
    return (
        f"<item><title>{title}</title><link>{link}</link><guid>{link}</guid>"
        f"<description>{summary}</description>{when}</item>"
    )


def poller(settings: Settings, redis: Redis, client: httpx.Client, **watcher: Any) -> Poller:
    """The real Poller; ``watcher`` overrides watcher settings (timeouts, concurrency)."""
    settings = dataclasses.replace(
        settings, watcher=dataclasses.replace(settings.watcher, jitter=0.0, **watcher)
    )
    keys = Keys(settings.redis.prefix)
    return Poller(settings, redis, keys, client, default_classifier())


def item_events(log: EventLog) -> list[Event]:
    return [e for _, e in log.read() if e.type in ("item.seen", "item.revised")]


def health(redis: Redis, settings: Settings, feed: FeedSettings) -> dict[str, object]:
    return Schedule(redis, Keys(settings.redis.prefix)).health(feed).to_dict()


# -- a 50 MiB body ------------------------------------------------------------------


def watch_once(config: Path, log: Path) -> tuple[int, int, str]:
    """Run ``sorawatch -c config watch --once`` and return (exit code, peak RSS in KiB,
    output). The peak is the child's own, from wait4, so earlier children do not count."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SORAWATCH_")}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sorawatch.cli", "-c", str(config), "watch", "--once"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
        guard = threading.Timer(120, proc.kill)  # against a hang, not a timing assertion
        guard.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            guard.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss, log.read_text("utf-8", errors="replace")


def test_a_50_mib_body_is_cut_at_the_cap_in_bounded_memory(
    redis_url: str, redis: Redis, settings: Settings, tmp_path: Path, reliability: Figures
) -> None:
    prefix = "hostile-big"
    with FeedServer() as server:
        small = server.route("/small.xml", Route(recorded("rss2_en.xml")))
        big = server.route("/big.xml", Route(generate=50 * MIB))  # streamed, never stored
        peaks = {}
        for name, url in (("small", small), ("big", big)):
            config = tmp_path / f"{name}.toml"
            config.write_text(
                f'[redis]\nurl = "{redis_url}"\nprefix = "{prefix}"\n\n'
                f'[web]\nbase_url = "https://watch.example.test"\nsecret = "s-for-hostile-feeds-s-for-hostile-feeds"\n\n'
                f'[data]\ndir = "{tmp_path / "data"}"\n\n'
                f'[[feeds]]\nurl = "{url}"\nname = "{name}"\n',
                encoding="utf-8",
            )
            code, peak, output = watch_once(config, tmp_path / f"{name}.log")
            assert "Traceback" not in output, output
            assert code == 0, output
            peaks[name] = peak
    keys = Keys(prefix)
    schedule = Schedule(redis, keys)
    ok = schedule.health(FeedSettings(url=small, name="small"))
    assert ok.last_ok
    assert not ok.failures
    cut = schedule.health(FeedSettings(url=big, name="big"))
    assert cut.last_ok is None
    assert cut.last_error_kind == "too_large"
    assert cut.last_error
    assert "exceeds the cap" in cut.last_error
    assert f"{Settings().watcher.max_bytes} bytes" in cut.last_error
    growth = (peaks["big"] - peaks["small"]) / 1024
    assert growth < 20, f"polling a 50 MiB feed grew the watcher by {growth:.1f} MiB"
    reliability.hostile_cases("feeds: 50 MiB body (cut at the cap)", 1)
    reliability.note(
        f"50 MiB feed: `watch --once` peak RSS {peaks['big'] / 1024:.1f} MiB against "
        f"{peaks['small'] / 1024:.1f} MiB for a small feed (+{growth:.1f} MiB; cap 5 MiB)"
    )


# -- a server that trickles ----------------------------------------------------------


class Trickle:
    """A raw HTTP server on 127.0.0.1. Each path is ``(head, drip, tail)``: ``head`` is
    sent at once, then ``drip`` one byte a second (``None``: dots, until the client
    hangs up), then ``tail`` at once."""

    def __init__(self, routes: dict[str, tuple[bytes, bytes | None, bytes]]) -> None:
        self.routes = routes
        self.stop = threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> Trickle:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.sock.close()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):  # OSError: the client hung up
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                request += chunk
            head, drip, tail = self.routes[request.split(b" ", 2)[1].decode()]
            conn.sendall(head)
            for byte in itertools.repeat(ord(".")) if drip is None else drip:
                if self.stop.wait(1.0):
                    return
                conn.sendall(bytes([byte]))
            conn.sendall(tail)


def test_a_server_trickling_one_byte_a_second_times_out(
    redis: Redis, settings: Settings, reliability: Figures
) -> None:
    body = rss(item("OpenAI releases Sora to everyone", "https://t.example.test/1")).encode()
    start = b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml; charset=utf-8\r\n"
    length = f"Content-Length: {len(body)}\r\n\r\n".encode()
    routes: dict[str, tuple[bytes, bytes | None, bytes]] = {
        # The headers arrive at once, then the body drips.
        "/body.xml": (start + length + body[:40], body[40:], b""),
        # The status line arrives, then a header drips for ever: httpx's read timeout
        # never fires (every byte comes sooner), and the header cap is 100 KiB (28 hours).
        "/headers.xml": (start + b"X-Drip: ", None, b""),
    }
    # A read timeout above the drip interval: only a bound on the whole fetch stops these.
    watcher = {"connect_timeout": 0.5, "read_timeout": 1.5, "concurrency": 2}
    with Trickle(routes) as server:
        feeds = [FeedSettings(url=server.url(p), name=p) for p in routes]
        with make_client(dataclasses.replace(settings.watcher, **watcher)) as client:
            done: list[PassSummary] = []
            runner = threading.Thread(
                target=lambda: done.append(
                    poller(settings, redis, client, **watcher).run_pass(feeds, force=True)
                ),
                daemon=True,
            )
            runner.start()
            runner.join(60)  # against a hang, not a timing assertion: the bound is ~5 s
            assert done, "a poll is still running after 60 s against a dripping server"
    outcomes = {o.name: o for o in done[0].outcomes}
    for feed in feeds:
        outcome = outcomes[feed.name]
        assert (outcome.outcome, outcome.kind) == ("error", "timeout"), outcome
        record = health(redis, settings, feed)
        assert record["last_error_kind"] == "timeout"
        assert "timed out" in str(record["last_error"])
        assert record["last_ok"] is None
    assert EventLog(redis, Keys(settings.redis.prefix)).count() == 0
    reliability.hostile_cases("feeds: trickling one byte a second (body, headers)", len(feeds))


# -- encodings -----------------------------------------------------------------------

ARABIC = "أطلقت OpenAI نموذج Sora لمشتركي ChatGPT Plus مقابل 20 دولارا شهريا"
ARABIC_SUMMARY = "قالت OpenAI إن نموذج الفيديو Sora متاح الآن لمشتركي ChatGPT Plus."
ENGLISH = "Sora is now available to ChatGPT Plus users at $20 a month"
LATIN = "Sora arrives at Café Société: OpenAI’s video model for €20"


def _arabic_feed(encoding: str, declared: str) -> bytes:
    return rss(
        item(ARABIC, "https://ar.example.test/sora", ARABIC_SUMMARY), encoding=declared, lang="ar"
    ).encode(encoding)


ENCODINGS: dict[str, tuple[bytes, str]] = {
    # (body, Content-Type)
    "invalid UTF-8 in a title": (
        rss(item("OpenAI releases Sora @@", "https://e.example.test/1"))
        .encode()
        .replace(b"@@", b"\xff\xfe\xc3\x28\xe2\x82"),
        "application/rss+xml; charset=utf-8",
    ),
    "invalid UTF-8, no charset anywhere": (
        rss(item(ENGLISH + " \x01", "https://e.example.test/2"))
        .replace(' encoding="utf-8"', "")
        .encode()
        .replace(b"\x01", b"\xc0\xaf\xed\xa0\x80"),
        "application/rss+xml",
    ),
    "UTF-8 Arabic with one stray invalid byte": (
        _arabic_feed("utf-8", "utf-8").replace(b"</description>", b"\xff</description>"),
        "application/rss+xml; charset=utf-8",
    ),
    "windows-1252 declared as UTF-8": (
        rss(item(LATIN, "https://e.example.test/3")).encode("cp1252"),
        "application/rss+xml; charset=utf-8",
    ),
    "windows-1256 Arabic declared as UTF-8 (header and XML)": (
        _arabic_feed("cp1256", "utf-8"),
        "application/rss+xml; charset=utf-8",
    ),
    "windows-1256 Arabic declared as UTF-8 (XML only)": (
        _arabic_feed("cp1256", "utf-8"),
        "application/rss+xml",
    ),
    "UTF-8 Arabic declared as ISO-8859-1 (header and XML)": (
        _arabic_feed("utf-8", "iso-8859-1"),
        "application/rss+xml; charset=iso-8859-1",
    ),
    "UTF-8 Arabic, header says ISO-8859-1, XML says UTF-8": (
        _arabic_feed("utf-8", "utf-8"),
        "text/xml; charset=iso-8859-1",
    ),
    "an encoding nobody knows": (
        _arabic_feed("utf-8", "x-no-such-charset"),
        "application/rss+xml; charset=x-no-such-charset",
    ),
    "UTF-16 declared as UTF-8": (
        _arabic_feed("utf-16", "utf-8"),
        "application/rss+xml; charset=utf-8",
    ),
}


def test_invalid_utf8_and_wrong_declared_encodings(
    redis: Redis, settings: Settings, reliability: Figures
) -> None:
    log = EventLog(redis, Keys(settings.redis.prefix))
    with FeedServer() as server:
        feeds = []
        for n, (name, (body, content_type)) in enumerate(ENCODINGS.items()):
            url = server.route(f"/{n}.xml", Route(body, content_type=content_type))
            feeds.append(FeedSettings(url=url, name=name))
        with httpx.Client(timeout=10, trust_env=False) as client:
            summary = poller(settings, redis, client, concurrency=8).run_pass(feeds, force=True)
    outcomes = {o.name: o for o in summary.outcomes}
    assert set(outcomes) == set(ENCODINGS)
    for name, outcome in outcomes.items():
        assert outcome.kind != "internal", (name, outcome.error)
        if outcome.outcome == "error":
            assert len(outcome.error or "") > 10, (name, outcome)
            feed = next(f for f in feeds if f.name == name)
            assert health(redis, settings, feed)["last_error"] == outcome.error
        else:
            assert outcome.outcome == "ok", (name, outcome)
    events = {e.data["feed"]: e for e in item_events(log)}
    for feed in feeds:
        outcome = outcomes[feed.name]
        event = events.get(feed.url)
        if "Arabic" in feed.name and outcome.outcome == "ok":
            # Read right, or not at all: garbled Arabic would hide the price it states.
            assert event is not None, feed.name
            assert event.data["title"] == ARABIC, (feed.name, event.data["title"])
            assert event.data["lang"] == "ar"
            assert event.data["facts"].get("pricing"), (feed.name, event.data["facts"])
        if "windows-1252" in feed.name:
            assert event is not None, feed.name
            assert event.data["title"] == LATIN, feed.name
        if event is not None:
            assert "\ufffd" not in event.data["title"] or "invalid" in feed.name
    reliability.hostile_cases("feeds: invalid UTF-8 and wrong declared encodings", len(feeds))


# -- CR/LF and 10,000-character titles into email ----------------------------------

LONG = " ".join(["longer"] * 1700)[:10_000]
EVIL_ITEMS: list[tuple[str, str, str]] = [
    # (title as XML, summary as XML, link): each a real Sora headline (distinct facts,
    # so each raises its own alerts) with the injection inside.
    (
        ENGLISH + "&#13;&#10;Bcc: victim@example.test&#13;&#10;X-Evil: 1",
        "OpenAI said Sora is in ChatGPT Plus.&#13;&#10;Bcc: victim@example.test",
        "https://x.example.test/plus",
    ),
    (
        "OpenAI partners with Lionsgate on Sora video model " + LONG,
        "The studio Lionsgate will use Sora. " + LONG,
        "https://x.example.test/lionsgate",
    ),
    (
        "<![CDATA[Sora Pro plan costs $200 a month\r\nBcc: victim@example.test\r\n\r\n"
        "<script>alert(1)</script>]]>",
        "OpenAI prices its Sora video model Pro plan at $200 per month.\n\nX-Evil: 1",
        "https://x.example.test/pro",
    ),
    (
        "OpenAI signs Sora deal with Pixar\u2028Bcc: victim@example.test\x85X-Evil: 1&#11;&#12;"
        + "x" * 9950,
        "Pixar studio will use the OpenAI Sora video model.\u2029X-Evil: 1",
        "https://x.example.test/pixar",
    ),
]
MAIL_HEADERS = {
    "from", "to", "subject", "date", "message-id", "list-id", "list-unsubscribe",
    "list-unsubscribe-post", "auto-submitted", "mime-version", "content-type",
    "content-transfer-encoding", "precedence", "x-auto-response-suppress",
}  # fmt: skip
LINE_BREAKS = re.compile("[\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


def test_crlf_and_10000_character_titles_reach_no_mail_header(
    redis: Redis, settings: Settings, smtp: SmtpServer, reliability: Figures
) -> None:
    settings = with_smtp(settings, smtp.port)
    setup_runtime(settings, redis)
    log = EventLog(redis, Keys(settings.redis.prefix))
    people = {"en@example.test": "en", "ar@example.test": "ar", "both@example.test": "both"}
    for address, lang in people.items():
        subscribe(log, address, lang)
    with FeedServer() as server, httpx.Client(timeout=10, trust_env=False) as client:
        feed = FeedSettings(url=server.url("/news.xml"), name="Outlet", lang="en", trust="official")
        server.route("/news.xml", Route(rss(WEATHER).encode()))
        watcher = poller(settings, redis, client)
        assert watcher.poll(feed, force=True).baseline
        evil = "".join(item(t, link, s) for t, s, link in EVIL_ITEMS)
        server.route("/news.xml", Route(rss(evil + WEATHER).encode()))
        outcome = watcher.poll(feed, force=True)
    assert (outcome.outcome, outcome.events) == ("ok", len(EVIL_ITEMS)), outcome

    # Feed → event: one line of at most MAX_TITLE characters, whatever the feed sent.
    events = [e for e in item_events(log) if not e.data["baseline"]]
    assert len(events) == len(EVIL_ITEMS)
    for event in events:
        for field in ("title", "summary", "source"):
            assert not LINE_BREAKS.search(event.data[field]), (field, event.data[field][:120])
        assert len(event.data["title"]) <= MAX_TITLE
        assert "<script" not in event.data["title"]

    # Event → alert → mail in a real SMTP server.
    run_jobs(redis)
    assert failed_jobs(redis) == []
    assert smtp.messages, "the news raised no mail"
    for received in smtp.messages:
        assert len(received.recipients) == 1
        assert received.recipients[0] in people
        raw = received.raw
        head = raw.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
        assert max(len(line) for line in head.split(b"\n")) <= 998  # RFC 5322 line limit
        message = message_from_bytes(raw, policy=policy.default)
        names = [name.lower() for name in message]
        assert set(names) <= MAIL_HEADERS, set(names) - MAIL_HEADERS
        assert names.count("subject") == 1
        assert names.count("to") == 1
        assert message["Bcc"] is None
        assert message["X-Evil"] is None
        subject = str(message["Subject"])
        assert not LINE_BREAKS.search(subject), subject[:200]
    assert "victim@example.test" not in {r for m in smtp.messages for r in m.recipients}
    reliability.hostile_cases(figures.CRLF_TITLES, len(EVIL_ITEMS) + len(smtp.messages))


# -- 10,000 items --------------------------------------------------------------------


def test_ten_thousand_items_in_one_feed(
    redis: Redis, settings: Settings, reliability: Figures
) -> None:
    count = 10_000
    items = "".join(
        item(
            f"OpenAI Sora video model notes, part {n}",
            f"https://many.example.test/notes/{n}",
            "Sora by OpenAI generates video.",
        )
        for n in range(count)
    )
    body = rss(items).encode()
    assert len(body) < Settings().watcher.max_bytes
    log = EventLog(redis, Keys(settings.redis.prefix))
    with FeedServer() as server, httpx.Client(timeout=30, trust_env=False) as client:
        # No validators: the second poll gets the whole body again.
        feed = FeedSettings(url=server.route("/many.xml", Route(body)), name="many")
        watcher = poller(settings, redis, client, read_timeout=30.0)
        first = watcher.poll(feed, force=True)
        assert (first.outcome, first.items, first.events) == ("ok", count, count), first
        assert log.count() == count
        again = watcher.poll(feed, force=True)
    assert (again.outcome, again.items, again.events) == ("ok", count, 0), again
    assert log.count() == count
    keys = {e.data["item_key"] for e in item_events(log)}
    assert len(keys) == count
    reliability.hostile_cases("feeds: 10,000 items in one feed (polled twice)", 1)


# -- dates at the edges ---------------------------------------------------------------

RSS_DATES = [
    "Mon, 01 Jan 0001 00:00:00 GMT",
    "Fri, 31 Dec 9999 23:59:59 GMT",
    "Fri, 31 Dec 9999 23:59:59 -1200",  # year 10000 in UTC
    "Mon, 01 Jan 0001 00:00:00 +1400",  # year 0 in UTC
    "Sat, 30 Feb 2025 10:00:00 GMT",
    "99999999999999",
    "not a date at all",
    "",
    "Tue, 31 Dec 1969 23:59:59 GMT",
]
ISO_DATES = [
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59-12:00",
    "0001-01-01T00:00:00+14:00",
    "2025-13-45T99:99:99Z",
    "garbage",
    "-0001-01-01T00:00:00Z",
]
DATED = [
    # (title, summary): each a Sora headline asserting something else.
    ("OpenAI releases Sora to everyone", "Sora is now generally available."),
    ("Sora Pro plan costs $200 a month", "OpenAI prices its Sora Pro plan at $200 per month."),
    ("OpenAI partners with Lionsgate on Sora video model", "Lionsgate will use Sora."),
    ("OpenAI signs Sora deal with Pixar", "Pixar studio will use the OpenAI Sora video model."),
]


def dated_feeds() -> dict[str, tuple[bytes, str]]:
    """RSS (pubDate), Atom (published/updated) and JSON Feed (date_published) items with
    every edge date, as {path: (body, content type)}."""
    rss_items = "".join(
        item(DATED[n % len(DATED)][0], f"https://d.example.test/rss/{n}", DATED[n % 4][1], d)
        for n, d in enumerate(RSS_DATES)
    )
    entries = "".join(
        f"<entry><title>{DATED[n % 4][0]}</title><id>urn:d:atom:{n}</id>"
        f'<link href="https://d.example.test/atom/{n}"/><published>{d}</published>'
        f"<updated>{d}</updated><summary>{DATED[n % 4][1]}</summary></entry>"
        for n, d in enumerate(ISO_DATES)
    )
    atom = (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>Dates</title><id>urn:d</id><updated>2025-02-03T10:00:00Z</updated>{entries}</feed>"
    )
    json_feed = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "Dates",
        "items": [
            {"id": f"j{n}", "url": f"https://d.example.test/json/{n}", "title": DATED[n % 4][0],
             "content_text": DATED[n % 4][1], "date_published": d}
            for n, d in enumerate([*ISO_DATES, 12345, None])
        ],
    }  # fmt: skip
    return {
        "/rss.xml": (rss(rss_items).encode(), "application/rss+xml; charset=utf-8"),
        "/atom.xml": (atom.encode(), "application/atom+xml; charset=utf-8"),
        "/feed.json": (json.dumps(json_feed).encode(), "application/feed+json"),
    }


def test_dates_in_the_years_1_and_9999_and_garbage(
    redis: Redis, settings: Settings, reliability: Figures
) -> None:
    log = EventLog(redis, Keys(settings.redis.prefix))
    setup_runtime(settings, redis)  # no [smtp]: alert mail goes to the outbox folder
    for address, lang in (("en@example.test", "en"), ("ar@example.test", "ar")):
        subscribe(log, address, lang, kinds=["change", "news"])
    bodies = dated_feeds()
    with FeedServer() as server, httpx.Client(timeout=10, trust_env=False) as client:
        feeds = [FeedSettings(url=server.url(p), name=p, trust="official") for p in bodies]
        weather = {
            "/rss.xml": (rss(WEATHER).encode(), "application/rss+xml"),
            "/atom.xml": (rss(WEATHER).encode(), "application/rss+xml"),
            "/feed.json": (rss(WEATHER).encode(), "application/rss+xml"),
        }
        for path, (body, content_type) in weather.items():
            server.route(path, Route(body, content_type=content_type))
        watcher = poller(settings, redis, client)
        watcher.run_pass(feeds, force=True)  # the baseline
        for path, (body, content_type) in bodies.items():
            server.route(path, Route(body, content_type=content_type))
        summary = watcher.run_pass(feeds, force=True)
    for outcome in summary.outcomes:
        assert outcome.outcome == "ok", outcome
    assert summary.items == len(RSS_DATES) + 2 * len(ISO_DATES) + 2

    events = [e for e in item_events(log) if not e.data["baseline"]]
    assert len(events) == summary.items
    for event in events:
        published = event.data["published"]
        if published is not None:
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", published), published
            assert 1 <= datetime.fromisoformat(published).year <= 9999
    years = {e.data["published"][:4] for e in events if e.data["published"]}
    assert {"0001", "9999"} <= years

    # Changes, alerts and mail from these items; then every page that shows them.
    run_jobs(redis)
    assert failed_jobs(redis) == []
    outbox = list(settings.outbox_dir.rglob("*.eml"))
    assert outbox, "the dated news raised no mail"
    with TestClient(create_app(settings, redis), raise_server_exceptions=True) as web:
        for lang in ("en", "ar"):
            assert web.get(f"/?lang={lang}").status_code == 200
            atom = web.get(f"/alerts.atom?lang={lang}")
            assert atom.status_code == 200
            ET.fromstring(atom.text)  # noqa: S314 (our own output)
    cases = len(RSS_DATES) + 2 * len(ISO_DATES) + 2
    reliability.hostile_cases("feeds: dates in the years 1 and 9999, and garbage", cases)

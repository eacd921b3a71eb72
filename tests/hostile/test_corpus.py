"""feedparser's own test corpus (../shared/feeds-corpus: broken, mis-encoded and
script-laden feeds) against the watcher and every rendering path.

1. Every file is served over HTTP on 127.0.0.1 and polled by the real watcher
   (fetch, parse, normalise, classify, detect): no crash, and each feed is either
   polled fine or shows a clear error in feed health.
2. The ``sanitize`` files: their items would mostly not pass the Sora classifier,
   and dressing each title up to pass it would test the dressing. So their parsed
   entries go through the watcher's own ``normalise`` (what an event carries) into
   alert records, and those through the real renderers: the alert email (HTML and
   text), the status page and the Atom feed of the real app. Nothing from them may
   arrive as markup: no script, style, event handler or ``javascript:`` URL.
"""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from redis import Redis

from sorawatch.events import Event, EventLog
from sorawatch.keys import Keys
from sorawatch.projections import apply
from sorawatch.settings import FeedSettings, Settings
from sorawatch.testing.alerts import alert_record
from sorawatch.testing.feeds import FeedServer, Route
from sorawatch.watcher.classify import default_classifier
from sorawatch.watcher.health import Schedule
from sorawatch.watcher.normalise import normalise
from sorawatch.watcher.parse import parse
from sorawatch.watcher.poll import Poller
from sorawatch.web.app import create_app
from sorawatch.workers.email import compose, render_alert
from tests.conftest import shared_dir
from tests.reliability import Figures

pytestmark = pytest.mark.hostile

# Markup that would run or restyle something if it reached a reader unescaped.
DANGER = re.compile(
    r"<\s*(script|style|iframe|object|embed|applet|meta|link|base|form)\b"
    r"|<[a-z][^>]*\son[a-z]+\s*="
    r"|(href|src|action)\s*=\s*[\"']?\s*(javascript|vbscript|data):",
    re.IGNORECASE,
)


HEADERS = {"from", "to", "subject", "date", "message-id", "list-id", "auto-submitted",
           "content-type", "mime-version", "content-transfer-encoding"}  # fmt: skip


def corpus_files() -> list[Path]:
    root = shared_dir("feeds-corpus")
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".xml", ".rdf"))


def test_every_corpus_feed_is_polled_or_reported(
    redis: Redis, settings: Settings, reliability: Figures
) -> None:
    files = corpus_files()
    root = shared_dir("feeds-corpus")
    keys = Keys(settings.redis.prefix)
    with FeedServer() as server:
        feeds = []
        for n, path in enumerate(files):
            route = f"/{n}/{path.relative_to(root).as_posix()}"
            server.route(route, Route(body=path.read_bytes(), content_type="application/xml"))
            feeds.append(FeedSettings(url=server.url(route), name=f"corpus {n}"))
        settings = dataclasses.replace(
            settings,
            watcher=dataclasses.replace(settings.watcher, concurrency=16, read_timeout=10),
        )
        with httpx.Client(timeout=10, trust_env=False) as client:
            poller = Poller(settings, redis, keys, client, default_classifier())
            summary = poller.run_pass(feeds, force=True)
    assert len(summary.outcomes) == len(files)
    schedule = Schedule(redis, keys)
    unclear = []
    failed = 0
    for feed in feeds:
        health = schedule.health(feed).to_dict()
        if health.get("last_error"):
            failed += 1
            if len(str(health["last_error"])) < 8:
                unclear.append((feed.url, health["last_error"]))
        elif not health.get("last_ok"):
            unclear.append((feed.url, "neither polled nor reported"))
    assert not unclear, unclear[:5]
    reliability.hostile_cases("feeds corpus over HTTP (feedparser's tests)", len(files))
    reliability.note(f"feeds corpus: {len(files) - failed} polled, {failed} reported in health")


def sanitize_entries() -> list[tuple[str, str, str | None]]:
    """(title, summary, url) of every entry of every ``sanitize`` file, as the watcher
    normalises them."""
    feed = FeedSettings(url="http://127.0.0.1:1/corpus", name="corpus")
    out = []
    for path in corpus_files():
        if "sanitize" not in path.parts:
            continue
        try:
            parsed = parse(feed.url, path.read_bytes(), {"content-type": "application/xml"})
        except Exception:  # noqa: S112 (a feed the parser rejects never reaches a renderer)
            continue
        for entry in parsed.entries:
            item = normalise(entry, feed, parsed, feed.url)
            out.append((item.title, item.summary, item.url))
        # The raw (unnormalised) title too: a renderer must escape even what we never strip.
        out += [(e.title or "", e.summary or "", e.link) for e in parsed.entries]
    return out


def test_sanitize_corpus_never_reaches_a_reader_as_markup(
    redis: Redis, settings: Settings, reliability: Figures
) -> None:
    entries = sanitize_entries()
    assert len(entries) > 300
    keys = Keys(settings.redis.prefix)
    log = EventLog(redis, keys)
    app = create_app(settings, redis)
    leaks: list[str] = []
    chunk = 20
    with TestClient(app, raise_server_exceptions=True) as client:
        # The app's own markup (its subscribe form, head tags) is the baseline: any
        # match beyond it came from a feed.
        own = {lang: _dangers(client.get(f"/?lang={lang}").text) for lang in ("en", "ar")}
        own_mail = {
            pref: _dangers(render_alert(alert_record(), pref, "https://watch.example.test").html)
            for pref in ("en", "ar", "both")
        }
        for start in range(0, len(entries), chunk):
            redis.delete(*redis.keys(keys.projection("alerts") + "*") or ["none"])
            for n, (title, summary, url) in enumerate(entries[start : start + chunk]):
                record = alert_record(
                    f"al_s{start + n:05d}",
                    kind="news",
                    title=title,
                    summary=summary,
                    raised_at=f"2025-02-03T10:{(start + n) % 60:02d}:00Z",
                    sources=[{"url": url, "title": title, "publisher": title[:40], "lang": "en",
                              "published": "2025-02-03T10:00:00Z"}],
                )  # fmt: skip
                event = Event.new("alert.raised", record, "corpus", record["alert_id"])
                log.append(event)
                apply(redis, keys, event)
                for pref in ("en", "ar", "both"):
                    mail = render_alert(record, pref, "https://watch.example.test")
                    if _dangers(mail.html) > own_mail[pref]:
                        leaks.append(f"email html: {title[:60]!r} {summary[:80]!r}")
                    message = compose(
                        settings=settings,
                        recipient="r@example.test",
                        subject=mail.subject,
                        text=mail.text,
                        html=mail.html,
                        message_key=record["alert_id"],
                    )
                    head = message.as_bytes().split(b"\n\n", 1)[0].decode("ascii", "replace")
                    names = {
                        ln.split(":", 1)[0].lower()
                        for ln in head.splitlines()
                        if ln[:1] not in (" ", "\t")
                    }
                    if names - HEADERS:
                        leaks.append(f"email header injected {names - HEADERS}: {title[:60]!r}")
            for lang in ("en", "ar"):
                page = client.get(f"/?lang={lang}").text
                if _dangers(page) > own[lang]:
                    leaks.append(f"status page ({lang}) chunk {start}")
                atom = client.get(f"/alerts.atom?lang={lang}").text
                leaks += _atom_leaks(atom, start)
    assert not leaks, leaks[:10]
    reliability.hostile_cases("sanitize corpus through email, page and Atom", len(entries))


def _dangers(html: str) -> int:
    return len(DANGER.findall(html))


def _atom_leaks(atom: str, start: int) -> list[str]:
    """Atom text is XML-escaped; a reader unescapes ``type="html"`` content and renders it."""
    root = ET.fromstring(atom)  # noqa: S314 (our own output)
    out = []
    for element in root.iter():
        if element.get("type") in ("html", "xhtml") and DANGER.search(element.text or ""):
            out.append(f"atom {element.tag} chunk {start}: {(element.text or '')[:80]!r}")
    return out

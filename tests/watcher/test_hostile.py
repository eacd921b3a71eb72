"""Hostile XML: entity bombs and external entities must neither expand nor fetch nor read."""

from __future__ import annotations

from pathlib import Path

import pytest

from sorawatch.testing.feeds import FeedServer, Route
from sorawatch.watcher.parse import parse
from tests.reliability import Figures
from tests.watcher.recorded import DATA, recorded

pytestmark = pytest.mark.hostile
URL = "http://127.0.0.1:1/feed"
XML_CASES = "feeds: billion laughs, external entities, a body naming a file"


def test_billion_laughs_does_not_expand(reliability: Figures) -> None:
    parsed = parse(URL, recorded("billion_laughs.xml"), {"content-type": "application/rss+xml"})
    texts = [e.title + e.summary for e in parsed.entries]
    assert parsed.entries, "the feed's item is still read"
    assert all(t.count("lol") < 10 for t in texts)  # 10^9 "lol"s if it expanded
    assert sum(len(t) for t in texts) < 1000
    reliability.hostile_cases(XML_CASES, 1)


def test_external_entities_are_not_resolved(
    tmp_path: Path, feed_server: FeedServer, reliability: Figures
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-MARKER", "utf-8")
    feed_server.route("/entity.txt", Route(b"REMOTE-ENTITY-MARKER", content_type="text/plain"))
    feed_server.route("/evil.dtd", Route(b'<!ENTITY xxe "DTD-MARKER">', content_type="text/plain"))
    body = (DATA / "xxe.xml.tmpl").read_text("utf-8")
    body = body.replace("{secret_path}", str(secret))
    body = body.replace("{remote_url}", feed_server.url("/entity.txt"))
    body = body.replace("{remote_dtd}", feed_server.url("/evil.dtd"))

    parsed = parse(URL, body.encode(), {"content-type": "application/rss+xml"})

    seen = " ".join(e.title + " " + e.summary for e in parsed.entries)
    assert "TOP-SECRET-MARKER" not in seen
    assert "REMOTE-ENTITY-MARKER" not in seen
    assert "DTD-MARKER" not in seen
    assert feed_server.requests == []  # nothing was fetched by the parser
    reliability.hostile_cases(XML_CASES, 3)  # a local file, a remote entity, a remote DTD


def test_a_body_that_names_a_file_is_not_opened(tmp_path: Path, reliability: Figures) -> None:
    secret = tmp_path / "feed.xml"
    secret.write_bytes(recorded("rss2_en.xml"))
    # feedparser opens a bytes argument that is a path; we hand it a stream instead.
    with pytest.raises(Exception, match="not a feed"):
        parse(URL, str(secret).encode(), {"content-type": "application/rss+xml"})
    reliability.hostile_cases(XML_CASES, 1)

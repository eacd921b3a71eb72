"""Hostile input at the edges: webhook URLs pointing inside the network (CLI, admin
API; the send-time guard is tests/workers/test_webhook.py), the settings cases
(tests/sorawatch/test_settings.py) counted, and the same story dressed up
differently (whitespace, entities, tracking parameters) staying one story."""

from __future__ import annotations

import dataclasses
import html
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from redis import Redis

from sorawatch.keys import Keys
from sorawatch.projections import webhooks
from sorawatch.projections.similarity import jaccard, tokens
from sorawatch.settings import Settings, WebhookSettings, WebSettings
from sorawatch.watcher.normalise import canonical_url, plain_text
from sorawatch.web.app import create_app
from tests.reliability import Figures
from tests.sorawatch import test_settings

pytestmark = pytest.mark.hostile

INSIDE = [
    "http://127.0.0.1:8080/hook",
    "http://10.0.0.1/hook",
    "http://169.254.169.254/latest/meta-data",
    "http://[::1]/hook",
    "http://localhost/hook",  # a name that resolves to a loopback address
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_FLUSHALL",
]


def test_inside_urls_refused_by_cli_and_admin_api(
    redis_url: str, redis: Redis, settings: Settings, tmp_path: Path, reliability: Figures
) -> None:
    strict = dataclasses.replace(
        settings,
        webhooks=WebhookSettings(allow_private=False),
        web=WebSettings(base_url="https://watch.example.test", secret="s", admin_token="t0ken"),
    )
    keys = Keys(strict.redis.prefix)
    client = TestClient(create_app(strict, redis))
    admin = {"Authorization": "Bearer t0ken"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("SORAWATCH_")}
    env.update(SORAWATCH_REDIS_URL=redis_url, SORAWATCH_REDIS_PREFIX=strict.redis.prefix)
    for url in INSIDE:
        response = client.post("/api/webhooks", headers=admin, json={"url": url})
        assert response.status_code in (400, 422), (url, response.status_code)
        cli = subprocess.run(
            [sys.executable, "-m", "sorawatch.cli", "webhook", "add", url],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert cli.returncode != 0, (url, cli.stdout)
        assert "Traceback" not in cli.stderr, cli.stderr
    assert webhooks.count(redis, keys) == 0
    assert client.get("/api/webhooks", headers=admin).json() == []
    reliability.hostile_cases("webhook URLs inside the network (CLI + admin API)", 2 * len(INSIDE))


def test_settings_cases_are_counted(reliability: Figures) -> None:
    # The cases themselves run in tests/sorawatch/test_settings.py (file, env, exit code 2).
    cases = len(test_settings.BAD) + 4 + 3 + 1
    assert cases > 10
    reliability.hostile_cases("settings (wrong type, range, unknown key, empty, missing)", cases)


_TRACKING = st.sampled_from(
    ["utm_source=x", "utm_medium=email", "utm_campaign=a", "fbclid=abc", "gclid=1"]
)
_SPACE = st.sampled_from([" ", "  ", "\t", "\n", "\u00a0"])
WORDS = ["OpenAI", "releases", "Sora", "video", "model", "to", "Plus", "users", "in", "Europe"]


@hsettings(max_examples=200, deadline=None)
@given(
    spaces=st.lists(_SPACE, min_size=len(WORDS), max_size=len(WORDS)),
    tracking=st.lists(_TRACKING, max_size=3, unique=True),
    fragment=st.booleans(),
    entities=st.booleans(),
    markup=st.booleans(),
)
def test_the_same_story_dressed_differently_is_one_story(
    spaces: list[str], tracking: list[str], fragment: bool, entities: bool, markup: bool
) -> None:
    url = "https://news.example.test/2025/sora-europe?id=7"
    title = " ".join(WORDS)
    dressed = "".join(w + s for w, s in zip(WORDS, spaces, strict=True))
    if entities:
        dressed = html.escape(dressed).replace("O", "&#79;", 1)
    if markup:
        dressed = f"<b>{dressed}</b>"
    dressed_url = url + "".join("&" + t for t in tracking) + ("#top" if fragment else "")
    assert canonical_url(dressed_url) == canonical_url(url)
    same = tokens(plain_text(dressed), plain_text(dressed))
    assert jaccard(same, tokens(title, title)) == 1.0

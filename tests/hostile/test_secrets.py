"""Secrets never printed or logged: a Redis password in a URL, a subscriber's token in
a path."""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient
from redis import Redis

from sorawatch import logs
from sorawatch.settings import Settings
from sorawatch.testing.ports import free_port
from sorawatch.tokens import Tokens
from sorawatch.web.app import create_app

pytestmark = pytest.mark.hostile

PASSWORD = "SuperSecretPass"  # the secret that must not show


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sorawatch", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    "url",
    [
        f"redis://:{PASSWORD}@127.0.0.1:{{port}}/0",
        f"redis://default:{PASSWORD}@127.0.0.1:{{port}}/0",
    ],
)
def test_redis_password_is_not_printed(url: str) -> None:
    port = free_port()  # nothing listens there
    done = _cli("events", "--count", env={"SORAWATCH_REDIS_URL": url.format(port=port)})
    assert done.returncode == 3
    assert "cannot reach Redis at redis://" in done.stderr
    assert f":***@127.0.0.1:{port}/0" in done.stderr
    assert PASSWORD not in done.stderr + done.stdout


def test_bad_redis_url_setting_hides_the_password() -> None:
    done = _cli("events", env={"SORAWATCH_REDIS_URL": f"http://:{PASSWORD}@127.0.0.1:1/0"})
    assert done.returncode == 2
    assert "redis.url" in done.stderr
    assert PASSWORD not in done.stderr


def test_a_crash_on_a_token_page_logs_the_route_not_the_token(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    # A Redis that is not there: the preferences page crashes after the token checks.
    down = Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1)
    token = Tokens(settings.web.secret or "").sign("preferences", "who@example.com")
    app = create_app(dataclasses.replace(settings), down)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.RedactingFormatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with (
            caplog.at_level(logging.ERROR),
            TestClient(app, raise_server_exceptions=False) as client,
        ):
            response = client.get(f"/preferences/{token}?lang=en")
    finally:
        root.removeHandler(handler)
    assert response.status_code == 500
    messages = [r.getMessage() for r in caplog.records]
    assert "unhandled error on GET /preferences/{token}" in messages
    assert token not in "\n".join(messages)
    # And whatever else a line carries (a traceback, a library's message) is redacted.
    assert token not in stream.getvalue()
    assert "/preferences/{token}" in stream.getvalue()


def test_formatters_redact_urls_and_token_paths() -> None:
    record = logging.LogRecord(
        "x", logging.ERROR, __file__, 1,
        "fetch redis://u:%s@h/0 then GET /unsubscribe/%s?lang=ar", (PASSWORD, "abc.DEF-123_x"), None,
    )  # fmt: skip
    for formatter in (logs.RedactingFormatter("%(message)s"), logs.JsonFormatter()):
        line = formatter.format(record)
        assert PASSWORD not in line
        assert "abc.DEF-123_x" not in line
        assert "redis://u:***@h/0" in line
        assert "/unsubscribe/{token}?lang=ar" in line

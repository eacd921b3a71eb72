"""Web fixtures: the real app over a real Redis, in-process (TestClient) or served
by uvicorn on 127.0.0.1 (for the browser and schemathesis)."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from redis import Redis

from sorawatch.events import EventLog
from sorawatch.keys import Keys
from sorawatch.settings import Settings
from sorawatch.tokens import Tokens
from sorawatch.web.app import create_app

ADMIN_TOKEN = "admin-token-for-tests"


@pytest.fixture
def web_settings(settings: Settings) -> Settings:
    """The shared test settings with an admin token."""
    return dataclasses.replace(
        settings, web=dataclasses.replace(settings.web, admin_token=ADMIN_TOKEN)
    )


@pytest.fixture
def app(web_settings: Settings, redis: Redis) -> FastAPI:
    return create_app(web_settings, redis)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    # Raise no server exceptions: a 500 must come back as the JSON/page answer.
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def log(redis: Redis, web_settings: Settings) -> EventLog:
    return EventLog(redis, Keys(web_settings.redis.prefix))


@pytest.fixture
def tokens(web_settings: Settings) -> Tokens:
    assert web_settings.web.secret
    return Tokens(web_settings.web.secret)


class LiveServer:
    """uvicorn serving an app on 127.0.0.1 in a thread."""

    def __init__(self, app: Any, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def live_settings(settings: Settings, port: int) -> Settings:
    """Settings whose public URL is the live server (so mailed links open it)."""
    web = dataclasses.replace(
        settings.web, base_url=f"http://127.0.0.1:{port}", admin_token=ADMIN_TOKEN
    )
    return dataclasses.replace(settings, web=web)

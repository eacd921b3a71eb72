"""Shared fixtures: a real Redis (our own server unless SORAWATCH_TEST_REDIS_URL is set)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from sorawatch.settings import DataSettings, Settings, WebhookSettings, WebSettings, WorkerSettings
from sorawatch.testing.redis import RedisServer
from sorawatch.workers import runtime
from tests.reliability import FIGURES, Figures

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def shared_dir(name: str) -> Path:
    """A folder of ../shared; skipped loudly when missing, except under CI where that fails."""
    path = SHARED / name
    if not path.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing: CI must run with ../shared beside the clone")
        pytest.skip(f"SKIPPED LOUDLY: {path} is missing (../shared must sit beside the repo)")
    return path


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("SORAWATCH_TEST_REDIS_URL")
    if given:
        yield given
        return
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def unconfigured_runtime() -> Iterator[None]:
    """Each test starts with the workers' runtime unconfigured, as a new process does:
    a test that runs jobs configures it, never inherits another test's."""
    runtime.reset()
    yield
    runtime.reset()


@pytest.fixture
def redis(redis_url: str) -> Iterator[Redis]:
    client = Redis.from_url(redis_url)
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


@pytest.fixture
def settings(redis_url: str, redis: Redis, tmp_path: Path) -> Settings:
    """Settings for one test: our Redis, a temp data folder, no feeds, fast retries."""
    base = Settings()
    return dataclasses.replace(
        base,
        redis=dataclasses.replace(base.redis, url=redis_url),
        data=DataSettings(dir=str(tmp_path / "data")),
        web=WebSettings(base_url="https://watch.example.test", secret="test-secret"),
        webhooks=WebhookSettings(allow_private=True, timeout=2.0, retry_schedule=[0, 0, 0]),
        workers=WorkerSettings(retry_schedule=[0, 0, 0]),
        feeds=(),
    )


@pytest.fixture
def reliability() -> Figures:
    """Where fault and hostile tests record their figures (printed at the end of the run)."""
    return FIGURES


def pytest_terminal_summary(terminalreporter: Any) -> None:
    lines = FIGURES.table()
    if lines:
        terminalreporter.section("reliability figures")
        for line in lines:
            terminalreporter.write_line(line)

"""Fixtures the worker tests share: a real SMTP server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sorawatch.testing.smtp import SmtpServer


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server

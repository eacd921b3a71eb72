"""Fault tests wait on conditions with generous bounds (``procs.SLACK``), so their
per-test timeout is larger than the suite's default."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/faults/" in item.nodeid and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(1800))

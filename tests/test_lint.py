"""The tool configuration in pyproject.toml is enforced by the test command, not by hope."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "argv",
    [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        # mypy through the script that lays the package out as installed (sorawatch.watcher
        # lives in watcher/): plain mypy cannot find those modules.
        ["scripts/typecheck.py"],
    ],
    ids=["ruff-check", "ruff-format", "mypy-strict"],
)
def test_tool_passes(argv: list[str], tmp_path: Path) -> None:
    if argv[0].endswith(".py"):
        command = [sys.executable, argv[0], "--cache-dir", str(tmp_path / "cache")]
    else:
        command = [sys.executable, "-m", *argv]
    proc = subprocess.run(
        command,
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]

"""The README is the newcomer's contract: its quick start and settings table must stay true."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
CI = REPO / ".ci" / "run"


def section(text: str, title: str) -> str:
    """The body of the `## title` section of a Markdown text."""
    match = re.search(rf"^## {re.escape(title)}\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def commands(block_text: str) -> list[str]:
    """Shell commands in the fenced code blocks of a Markdown text, comments stripped."""
    found = []
    for block in re.findall(r"```(?:sh|bash|console)?\n(.*?)```", block_text, re.S):
        for line in block.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                found.append(line)
    return found


def quick_start_test_command() -> str:
    found = [c for c in commands(section(README.read_text("utf-8"), "Quick start")) if "test" in c]
    assert len(found) == 1, f"the quick start should name exactly one test command, got {found}"
    return found[0]


def ci_commands() -> list[str]:
    """The top-level command lines of .ci/run (no comments, no indented blocks)."""
    lines = []
    for raw in CI.read_text("utf-8").splitlines():
        if raw and not raw[0].isspace() and not raw.startswith("#"):
            lines.append(raw.strip())
    return lines


def test_quick_start_names_run_and_test() -> None:
    found = commands(section(README.read_text("utf-8"), "Quick start"))
    assert found[:2] == ["scripts/run", "scripts/test"], found


def test_ci_runs_exactly_the_readme_test_command() -> None:
    command = quick_start_test_command()
    assert command in ci_commands(), f".ci/run does not run {command!r} as the README says"
    # It is the last thing CI does, so its exit code is CI's verdict.
    assert ci_commands()[-1] == command


def test_the_test_command_runs_pytest_in_the_venv() -> None:
    script = REPO / shlex.split(quick_start_test_command())[0]
    assert script.is_file(), f"{script} is missing"
    assert script.stat().st_mode & 0o111, f"{script} is not executable"
    assert ".venv/bin/python -m pytest -q" in script.read_text("utf-8")


def test_ci_script_is_bash_and_strict() -> None:
    text = CI.read_text("utf-8")
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    assert "postfix" not in " ".join(ci_commands()), "postfix is installed by the bench, not CI"


def settings_table() -> str:
    text = README.read_text("utf-8")
    start = text.index("<!-- settings-table:start")
    return text[start : text.index("<!-- settings-table:end -->", start)]


def test_readme_settings_table_lists_every_env_name() -> None:
    from sorawatch.settings import env_names

    table = settings_table()
    missing = [name for name in env_names() if f"`{name}`" not in table]
    assert missing == [], (
        f"README's settings table lacks {missing}: scripts/settings_table.py --write"
    )


def test_readme_settings_table_is_what_the_script_generates() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "settings_table.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_troubleshooting_quotes_real_messages() -> None:
    """The messages the README quotes are printed by the code as written."""
    text = section(README.read_text("utf-8"), "Troubleshooting")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SORAWATCH_")}
    cases = [
        ({"SORAWATCH_WEB_PORT": "abc"}, ["events"]),
        ({"SORAWATCH_SMTP_USERNAME": "a"}, ["events"]),
        ({}, ["events"]),  # no Redis configured
    ]
    for extra, argv in cases:
        result = subprocess.run(
            [sys.executable, "-m", "sorawatch.cli", *argv],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
        )
        message = result.stderr.strip().splitlines()[-1]
        assert result.returncode == 2, result.stderr
        assert message in text, f"README's troubleshooting should quote {message!r}"


def test_readme_cli_table_lists_every_command() -> None:
    from sorawatch.cli.main import cli

    text = README.read_text("utf-8")
    start = text.index("<!-- cli-table:start -->")
    table = text[start : text.index("<!-- cli-table:end -->", start)]
    documented = set(re.findall(r"^\| `([a-z]+)", table, re.M))
    missing = sorted(set(cli.commands) - documented)
    stale = sorted(documented - set(cli.commands))
    assert missing == [], f"README's command table lacks {missing}"
    assert stale == [], f"README's command table lists commands that do not exist: {stale}"

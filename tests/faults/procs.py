"""Real ``sorawatch`` processes for the fault tests: a settings file, start, SIGKILL, wait.

Each process gets its own session (process group), so a kill takes the command
and every child it started (RQ workers, work horses, schedulers) at once, as a
container runtime or the OOM killer would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def write_config(path: Path, redis_url: str, prefix: str, data_dir: Path, extra: str = "") -> Path:
    """A settings file for the processes under test (Redis comes from the environment)."""
    path.write_text(
        f'[redis]\nprefix = "{prefix}"\n\n'
        '[web]\nbase_url = "https://watch.example.test"\nsecret = "fault-secret-fault-secret-fault-secret"\n\n'
        f'[data]\ndir = "{data_dir}"\n\n' + extra,
        encoding="utf-8",
    )
    return path


class Proc:
    """One ``sorawatch`` command in its own process group, logging to a file."""

    def __init__(self, config: Path, redis_url: str, *args: str, log: Path) -> None:
        self.args = args
        self.log_path = log
        env = {k: v for k, v in os.environ.items() if not k.startswith("SORAWATCH_")}
        env["SORAWATCH_REDIS_URL"] = redis_url
        env["PYTHONUNBUFFERED"] = "1"
        self._log = open(log, "ab")  # noqa: SIM115 (closed in stop/kill)
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "sorawatch.cli", "-c", str(config), *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def kill(self) -> None:
        """SIGKILL the command and every process under it, and reap the command.

        The process group is not enough: RQ puts each work horse in a session of its
        own (``setsid``), so the tree is walked through /proc first.
        """
        tree = [self.popen.pid, *descendants(self.popen.pid)]
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)
        self._log.close()

    def stop(self, timeout: float = 120) -> int:
        """SIGTERM (a warm shutdown), then SIGKILL what is left after ``timeout`` seconds
        (a bound: a process that stops returns at once); returns the exit code, -9 for
        a process that had to be killed."""
        tree = descendants(self.popen.pid)
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout)
        for pid in [*tree, *descendants(self.popen.pid)]:  # stragglers
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        code = self.popen.wait(10)
        self._log.close()
        return code

    def wait(self, timeout: float) -> int:
        """Wait for the command to end by itself (up to ``timeout * SLACK`` seconds);
        returns its exit code."""
        code = self.popen.wait(timeout * SLACK)
        self._log.close()
        return code

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children, ...), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        parents.setdefault(ppid, []).append(int(entry))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


# Bounds are against hanging, never budgets: each one is what the step takes on an idle
# machine with room to spare, times this, because two cores shared with a second test
# run make the same work several times slower (and a test must not fail for that).
SLACK = 5


def wait_for(check: Callable[[], bool], timeout: float, what: str, poll: float = 0.05) -> None:
    """Poll ``check`` until it is true; fail with ``what`` after ``timeout * SLACK``
    seconds. (A deadline against hanging, not a timing assertion.)"""
    bound = timeout * SLACK
    deadline = time.monotonic() + bound
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {bound:.0f}s waiting for {what}")
        time.sleep(poll)

"""Supervise child processes in one tree: start, restart with backoff, stop cleanly.

Each child runs in a session of its own, so a Ctrl-C in the terminal reaches the
supervisor only and the stop is ordered; stopping a child signals its whole
process group, so whatever it forked (an RQ work horse, a uvicorn worker) goes
with it. On Linux each child also gets SIGTERM if the supervisor itself dies.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from sorawatch.embedded import term_on_parent_death

log = logging.getLogger("sorawatch.supervisor")


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """What to run: a name for the logs, the argv, extra environment variables."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Restart delays: ``first`` doubling to ``cap``; a child up for ``stable`` s starts over."""

    first: float = 1.0
    cap: float = 30.0
    stable: float = 60.0

    def delay(self, crashes: int) -> float:
        return min(self.cap, self.first * 2.0 ** max(0, crashes - 1))


@dataclass
class Child:
    spec: ChildSpec
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    crashes: int = 0  # consecutive quick crashes, for the backoff
    restarts: int = 0  # all restarts, for the record
    due: float | None = None  # when to start it again after a crash

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Supervisor:
    """Runs ``specs`` as children until ``stop()``; restarts any that exits on its own.

    ``base_env`` is the environment every child starts from (the caller's); each
    spec's ``env`` is laid over it.
    """

    def __init__(
        self,
        specs: Sequence[ChildSpec],
        *,
        base_env: Mapping[str, str],
        backoff: Backoff | None = None,
        stop_timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.children = [Child(spec) for spec in specs]
        self.base_env = dict(base_env)
        self.backoff = backoff or Backoff()
        self.stop_timeout = stop_timeout
        self.clock = clock
        self.stopping = False

    def _spawn(self, child: Child) -> None:
        env = {**self.base_env, **child.spec.env}
        child.proc = subprocess.Popen(
            list(child.spec.argv),
            env=env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=term_on_parent_death,  # the supervisor starts children before any thread
        )
        child.started = self.clock()
        child.due = None
        log.info("started %s (pid %d)", child.spec.name, child.proc.pid)

    def start(self) -> None:
        """Start every child."""
        for child in self.children:
            self._spawn(child)

    def poll(self) -> None:
        """Notice children that exited, log it, and restart those whose backoff has passed."""
        if self.stopping:
            return
        now = self.clock()
        for child in self.children:
            if child.proc is None:
                continue
            code = child.proc.poll()
            if code is not None and child.due is None:
                up = now - child.started
                child.crashes = 1 if up >= self.backoff.stable else child.crashes + 1
                delay = self.backoff.delay(child.crashes)
                child.due = now + delay
                log.error(
                    "%s (pid %d) exited with %s after %.1f s; restarting in %.0f s",
                    child.spec.name,
                    child.proc.pid,
                    _describe_exit(code),
                    up,
                    delay,
                )
                _kill_group(child.proc.pid, signal.SIGKILL)  # whatever it forked goes too
            if child.due is not None and now >= child.due:
                child.restarts += 1
                self._spawn(child)

    def run(
        self,
        should_stop: Callable[[], bool],
        *,
        on_tick: Callable[[], None] | None = None,
        tick: float = 0.2,
    ) -> None:
        """Poll (and call ``on_tick``) until ``should_stop()`` says so; the caller then stops."""
        while not should_stop():
            self.poll()
            if on_tick is not None and not should_stop():
                on_tick()
            time.sleep(tick)

    def stop(self) -> None:
        """SIGTERM every child's process group, wait up to ``stop_timeout``, SIGKILL the rest."""
        self.stopping = True
        # A child waiting for its restart was already reaped and its group killed.
        live = [c for c in self.children if c.proc is not None and c.due is None]
        for child in live:
            assert child.proc is not None
            if child.proc.poll() is None:
                log.info("stopping %s (pid %d)", child.spec.name, child.proc.pid)
            _kill_group(child.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for child in live:
            assert child.proc is not None
            try:
                child.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning(
                    "%s did not stop in %.0f s; killing it", child.spec.name, self.stop_timeout
                )
        # Stragglers: the child itself, or anything left in its process group (forked helpers).
        for child in live:
            assert child.proc is not None
            _kill_group(child.proc.pid, signal.SIGKILL)
            if child.proc.poll() is None:
                child.proc.wait(5)


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    """Signal a process group; one that is already gone is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"

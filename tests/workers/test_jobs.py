"""The one list of job functions: every name resolves to a function that accepts the
arguments the code enqueues it with, and no other module spells a job's path."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sorawatch import jobs

ROOT = Path(__file__).resolve().parents[2]
Call = tuple[tuple[Any, ...], dict[str, Any]]

# How the code enqueues each job that is not a channel's batch job.
CALLS: dict[str, list[Call]] = {
    jobs.PROCESS_CHANGE: [(("ev_1",), {})],  # Job.for_event: the event id
    jobs.FAN_OUT: [(("ev_1",), {})],
    jobs.SEND_CONFIRMATION: [(("a@example.com",), {}), (("a@example.com", 1), {})],
}
# A channel's batch job: from the fan-out and the digest tick, from a scheduled retry
# (the tag as a keyword), and from a dead letter requeued by hand (the tag positional).
BATCH_CALLS: list[Call] = [
    (("al_1", ["r1"], 0), {}),
    (("al_1", ["r1"], 1), {"tag": "ev_9"}),
    (("al_1", ["r1"], 0, "ev_9"), {}),
]


def resolve(path: str) -> Callable[..., Any]:
    """What an RQ worker does with a job's function name."""
    module, _, name = path.rpartition(".")
    func = getattr(importlib.import_module(module), name)
    assert callable(func), path
    return func  # type: ignore[no-any-return]


def channel_jobs() -> list[jobs.ChannelJob]:
    """The registered channels' jobs and the one the tests register (``log``)."""
    return [*jobs.CHANNELS.values(), jobs.LOG]


def calls() -> list[tuple[str, Call]]:
    found = [(path, call) for path, cs in CALLS.items() for call in cs]
    found += [(c.func, call) for c in channel_jobs() for call in BATCH_CALLS]
    return found


@pytest.mark.parametrize(("path", "call"), calls(), ids=lambda v: str(v)[:40])
def test_each_job_resolves_and_takes_its_arguments(path: str, call: Call) -> None:
    args, kwargs = call
    inspect.signature(resolve(path)).bind(*args, **kwargs)  # TypeError if not


def test_every_job_is_listed_and_every_listed_job_is_called_somewhere() -> None:
    assert set(jobs.ALL) == set(CALLS) | {c.func for c in channel_jobs()}
    assert {n: c.func for n, c in jobs.CHANNELS.items()} == jobs.DELIVERY_FUNCS
    assert jobs.queues() == ("changes", "email", "webhook")


def test_no_module_spells_a_job_path_but_the_registry() -> None:
    pattern = re.compile(r"^sorawatch\.(watcher|workers)(\.[a-z_]+){2,}$")
    found = []
    for folder in ("sorawatch", "watcher", "workers", "bench"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == ROOT / "sorawatch" / "jobs.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                text = node.value if isinstance(node, ast.Constant) else None
                if isinstance(text, str) and pattern.match(text):
                    found.append(f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}: {text}")
    assert found == []

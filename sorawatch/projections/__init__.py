"""Projections: read models rebuilt from the event log.

Every projection update goes through :func:`apply`, which dispatches an event to
every handler registered for its type. The live path and ``replay`` both call it,
so a replay rebuilds exactly what the live system built. Handlers are idempotent
(sets, hashes and sorted sets keyed by ids): applying an event twice changes
nothing, which lets a re-run job re-apply what a crash may have left unapplied.

A module contributes handlers with ``@handles("type", ...)``; the modules are
imported on first use so that ``sorawatch.projections`` imports nothing heavy.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from redis import Redis

from sorawatch.errors import EventError
from sorawatch.events import REGISTRY, Event
from sorawatch.keys import Keys

Handler = Callable[[Any, Keys, Event], None]

HANDLERS: dict[str, list[Handler]] = {}

# Projection modules, imported once on first apply.
MODULES = ("subscribers", "webhooks", "stories", "state", "alerts", "ledger")

_loaded = False


def handles(*types: str) -> Callable[[Handler], Handler]:
    """Register the decorated ``handler(redis, keys, event)`` for each event type."""

    def register(handler: Handler) -> Handler:
        for name in types:
            if name not in REGISTRY:
                raise EventError(f"{name}: handler registered for an unknown event type")
            bucket = HANDLERS.setdefault(name, [])
            if handler not in bucket:
                bucket.append(handler)
        return handler

    return register


def load() -> None:
    """Import every projection module so its handlers are registered."""
    global _loaded
    if _loaded:
        return
    for name in MODULES:
        importlib.import_module(f"sorawatch.projections.{name}")
    _loaded = True


def apply(redis: Redis, keys: Keys, event: Event) -> None:
    """Apply ``event`` to every projection that handles its type.

    Raises EventError for a type no handler knows (never a silent skip). Writes the
    projection keys under ``keys.projection(...)``.
    """
    load()
    handlers = HANDLERS.get(event.type)
    if not handlers:
        raise EventError(f"{event.type}: no projection handles this event type ({event.id})")
    for handler in handlers:
        handler(redis, keys, event)

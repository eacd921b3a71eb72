"""RQ job functions for the ``changes`` queue: thin, module-level, ids in."""

from __future__ import annotations

from sorawatch.workers import changes, runtime


def process_change(event_id: str) -> str:
    """Dedupe, fold and alert for one ``item.seen`` / ``item.revised`` event."""
    rt = runtime.current()
    return changes.process(rt.redis, rt.keys, rt.log, rt.settings.workers, event_id)

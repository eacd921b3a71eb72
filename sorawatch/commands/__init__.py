"""Commands: what a person or an operator asks for, written as events to the log and
applied to the read models at once.

``sorawatch.projections`` holds the read models (event handlers and queries) and
nothing that writes events; the commands live here, one module per subject.
"""

from __future__ import annotations

from sorawatch.events import Event, EventLog
from sorawatch.projections import apply


def write(log: EventLog, event: Event) -> None:
    """Append ``event`` and apply it to the read models at once (what a command does)."""
    log.append(event)
    apply(log.redis, log.keys, event)

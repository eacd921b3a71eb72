"""The typed event data matches the registry, and the events the system writes match it."""

from __future__ import annotations

from redis import Redis

from sorawatch.event_data import DATA
from sorawatch.events import REGISTRY
from sorawatch.settings import Settings
from tests.sorawatch.test_replay import realistic_run


def test_every_registered_type_has_its_typed_data_and_no_other() -> None:
    assert sorted(DATA) == sorted(REGISTRY)


def test_what_mypy_trusts_is_what_validation_guarantees() -> None:
    # A required key of the TypedDict is one `Event.validate` checks for every event in
    # the log; any other key may be missing from an older log, so it is NotRequired.
    for name, kind in REGISTRY.items():
        assert DATA[name].__required_keys__ == frozenset(kind.required), name


def test_the_events_of_a_realistic_run_carry_only_typed_keys(
    settings: Settings, redis: Redis
) -> None:
    log = realistic_run(settings, redis)
    seen: set[str] = set()
    for _sid, event in log.read():
        typed = DATA[event.type]
        known = typed.__required_keys__ | typed.__optional_keys__
        assert set(event.data) <= known, (event.type, set(event.data) - known)
        seen.add(event.type)
    assert {"item.seen", "story.started", "story.merged", "state.changed", "alert.raised",
            "subscriber.requested", "webhook.registered"} <= seen  # fmt: skip

"""The judgement rules one by one: lifecycle (`sorawatch.workers.state`) and corroboration
(`sorawatch.workers.corroborate`). Each case is named after the rule it needs; it fails without it."""

from __future__ import annotations

from typing import Any

import pytest

from sorawatch.workers.corroborate import Report, confirmed_by
from sorawatch.workers.state import Snapshot, fold

DAY = 86400.0
T0 = 1_700_000_000.0


def line(value: str, opened: str = "2024-02-15T00:00:00Z", **extra: Any) -> dict[str, Any]:
    return {"value": value, "version": extra.pop("version", "Sora"), "since": opened,
            "opened": opened, **extra}  # fmt: skip


def changes(snap: Snapshot, facts: dict[str, Any], dated: bool = False) -> list[tuple[Any, ...]]:
    return [(c.key, (c.before or {}).get("value"), c.after.get("value")) for c in
            fold(snap, facts, T0, dated)]  # fmt: skip


# -- lifecycle ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "claimed", "moves"),
    [
        ("announced", "research_preview", True),
        ("research_preview", "released", True),
        ("released", "expanded", True),
        # ``lifecycle``: background or a sloppy headline never walks a line back
        ("released", "announced", False),
        ("released", "research_preview", False),
        ("expanded", "limited_access", False),
        ("expanded", "released", False),
        # lateral steps at the same rank are not news
        ("research_preview", "limited_access", False),
        # explicit steps back
        ("released", "paused", True),
        ("announced", "paused", True),  # testers had access: theirs pauses
        ("expanded", "discontinued", True),
        ("announced", "delayed", True),
        ("released", "delayed", False),  # a released line is not delayed
        # ``resume``
        ("paused", "released", True),
        ("paused", "announced", False),
        # ``ended``
        ("discontinued", "released", False),
        ("discontinued", "paused", False),
    ],
)
def test_lifecycle_moves_forward_and_back_only_by_explicit_steps(
    current: str, claimed: str, moves: bool
) -> None:
    snap = Snapshot(lines={"Sora": line(current)})
    got = changes(snap, {"status": claimed})
    assert bool(got) is moves
    if moves:
        assert got == [("status:Sora", current, claimed)]


def test_open_to_all_an_expansion_while_invite_only_is_released_when_invites_go() -> None:
    grew = Snapshot(lines={"Sora 2": line("expanded", version="Sora 2",
                                          steps=["limited_access", "expanded"])})  # fmt: skip
    assert changes(grew, {"status": "released"}) == [("status:Sora 2", "expanded", "released")]
    opened = Snapshot(lines={"Sora 2": line("expanded", version="Sora 2",
                                            steps=["limited_access", "released", "expanded"])})  # fmt: skip
    assert changes(opened, {"status": "released"}) == []


def test_scope_a_new_place_is_a_change_for_an_expanded_line() -> None:
    snap = Snapshot(lines={"Sora": line("expanded", where=["EU", "UK"])})
    assert changes(snap, {"status": "expanded", "where": ["UK"]}) == []
    got = fold(snap, {"status": "expanded", "where": ["UK", "Japan"]}, T0)
    assert [c.after["where"] for c in got] == [["Japan"]]


def test_new_line_opens_for_a_new_version_and_unversioned_claims_go_to_the_newest() -> None:
    snap = Snapshot(lines={"Sora": line("expanded")})
    assert changes(snap, {"status": "limited_access", "version": "Sora 2"}) == [
        ("status:Sora 2", None, "limited_access")
    ]
    both = Snapshot(
        lines={
            "Sora": line("expanded"),
            "Sora 2": line("limited_access", "2025-09-30T00:00:00Z", version="Sora 2"),
        }
    )
    assert changes(both, {"status": "released"}) == [
        ("status:Sora 2", "limited_access", "released")
    ]
    # a step back of a line never shown is an echo, not news
    assert changes(Snapshot(), {"status": "paused", "version": "Sora 3"}) == []


def test_discontinued_without_a_version_ends_every_line() -> None:
    both = Snapshot(
        lines={
            "Sora": line("expanded"),
            "Sora 2": line("released", "2025-09-30T00:00:00Z", version="Sora 2"),
        }
    )
    got = changes(both, {"status": "discontinued"})
    assert got == [("status:Sora", "expanded", "discontinued"),
                   ("status:Sora 2", "released", "discontinued")]  # fmt: skip


def test_older_report_does_not_turn_the_clock_back() -> None:
    later = "2024-12-09T00:00:00Z"
    snap = Snapshot(lines={"Sora": line("announced", dated=True, since=later)})
    old = T0  # 2023: before the dated fact it would replace
    assert fold(snap, {"status": "released"}, old, dated=True) == []
    assert fold(snap, {"status": "released"}, old, dated=False)  # undated: counts as seen


def test_plans_new_changed_and_same() -> None:
    plus = {"plan": "ChatGPT Plus", "amount": 20, "currency": "USD", "period": "month"}
    snap = Snapshot(plans={"chatgpt plus": plus})
    assert fold(snap, {"pricing": [plus]}, T0) == []
    raised = fold(snap, {"pricing": [{**plus, "amount": 25}]}, T0)
    assert [(c.before["amount"], c.after["amount"]) for c in raised if c.before] == [(20, 25)]
    pro = {**plus, "plan": "ChatGPT Pro", "amount": 200}
    assert [c.key for c in fold(snap, {"pricing": [pro]}, T0)] == ["plan:ChatGPT Pro"]


def test_partners_start_once_and_end_only_when_active() -> None:
    snap = Snapshot(partners={"disney": {"name": "Disney", "since": "2025-12-11T00:00:00Z"}})
    assert fold(snap, {"partners": ["Disney"]}, T0) == []
    assert [c.after for c in fold(snap, {"partners": ["Mattel"]}, T0)] == [
        {"partner": "Mattel", "active": True}
    ]
    ended = fold(snap, {"partners_ended": ["Disney"]}, T0)
    assert [c.after for c in ended] == [{"partner": "Disney", "active": False}]
    assert fold(snap, {"partners_ended": ["Mattel"]}, T0) == []  # never active


# -- corroboration ------------------------------------------------------------------


def report(publisher: str, *, official: bool = False, story: str = "s1",
           level: str | None = None, at: float = T0, headline: bool = False) -> Report:  # fmt: skip
    return Report(publisher, official, story, level, at, headline)


def earlier(*reports: tuple[str, str, float]) -> dict[str, Any]:
    from sorawatch.projections._common import iso

    return {"reports": [{"publisher": p, "story": s, "at": iso(at)} for p, s, at in reports]}


def test_official_confirms_alone() -> None:
    assert confirmed_by(report("OpenAI News", official=True), None, 7) == "official"
    assert confirmed_by(report("The Verge"), None, 7) is None


def test_publishers_a_second_independent_publisher_within_the_window_confirms() -> None:
    first = earlier(("The Verge", "s1", T0))
    assert confirmed_by(report("TechCrunch", level="event", at=T0 + DAY), first, 7) == "publishers"
    # the same publisher twice is one voice
    assert confirmed_by(report("The Verge", level="event", at=T0 + DAY), first, 7) is None
    # a syndicated copy (same item or near-identical text of that story) is the same voice
    assert confirmed_by(report("Aggregator", level="story", at=T0 + DAY), first, 7) is None
    assert confirmed_by(report("Aggregator", level="item", at=T0 + DAY), first, 7) is None
    # outside the window the first report has gone stale
    assert confirmed_by(report("TechCrunch", level="event", at=T0 + 9 * DAY), first, 7) is None


def test_headline_rule_only_when_switched_on() -> None:
    single = report("The Verge", headline=True)
    assert confirmed_by(single, None, 7) is None
    assert confirmed_by(single, None, 7, headline_rule=True) == "headline"

"""Property tests for the event envelope."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sorawatch.events import Event

json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(
    email=st.text(min_size=1),
    extra=st.dictionaries(st.text(max_size=10), json_values, max_size=5),
)
def test_envelope_round_trips_through_json(email: str, extra: dict[str, object]) -> None:
    data = {**extra, "email": email}
    event = Event.new("subscriber.confirmed", data, email)
    back = Event.from_json(event.to_json())
    assert back == event
    assert back.to_dict() == event.to_dict()


@given(st.text(min_size=1))
def test_ids_derive_from_identity(email: str) -> None:
    a = Event.new("subscriber.confirmed", {"email": email}, email)
    b = Event.new("subscriber.confirmed", {"email": email, "note": 1}, email)
    assert a.id == b.id
    assert Event.new("subscriber.unsubscribed", {"email": email}, email).id != a.id

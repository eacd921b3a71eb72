"""The data of each event type, typed: what mypy knows of ``Event.data``.

One ``TypedDict`` per registered type (``sorawatch.events.REGISTRY``), gathered in
``DATA``. Producers build their data as one of these, handlers read it back with
``event.data_as(...)``, so a producer and its handler cannot disagree on a key.

Required keys are exactly the registry's required keys: those are what
``Event.validate`` guarantees for every event read from the log. Every other key is
``NotRequired``: an event from an older log may lack it, and its reader must say what
it falls back to. The JSON in the log is unchanged by any of this: these are types
of plain dicts, not classes the data is converted into.

No ``from __future__ import annotations`` here: ``NotRequired`` must be seen at run
time for ``__required_keys__`` (which the tests compare with the registry) to be right.
"""

from typing import Any, NotRequired, TypedDict

# -- shared shapes ------------------------------------------------------------------


class Evidence(TypedDict):
    """Where a fact was read: the item that said it."""

    url: str | None
    title: str | None
    publisher: str | None
    lang: str | None
    at: str


class Told(TypedDict):
    """One change an alert tells (``confirmed_by`` None for an early, unconfirmed one)."""

    topic: str
    key: str
    before: dict[str, Any] | None
    after: dict[str, Any]
    confirmed_by: str | None


class Source(TypedDict):
    """One item an alert cites."""

    url: str | None
    title: str | None
    publisher: str | None
    lang: str | None
    published: str | None


class Result(TypedDict):
    """One recipient's outcome in a ``delivery.*`` event."""

    recipient: str
    outcome: str
    attempt: int
    error: NotRequired[str]
    permanent: NotRequired[bool]
    retry_at: NotRequired[str]
    # What the channel adds (``sorawatch.workers.retry.Outcome.extra``).
    code: NotRequired[int]
    recovered: NotRequired[bool]
    webhook_id: NotRequired[str]


# -- items and stories --------------------------------------------------------------


class ItemSeen(TypedDict):
    feed: str
    source: str
    item_key: str
    url: str | None
    title: str
    summary: str
    lang: str
    published: str | None
    content_hash: str
    baseline: bool
    topics: list[str]
    facts: dict[str, Any]
    official: NotRequired[bool]


class ItemRevised(ItemSeen):
    previous_hash: str


class StoryFiled(TypedDict):
    """The change worker's decision about an item (``story.started`` / ``story.merged``)."""

    item_event: str
    story: str
    lang: NotRequired[str | None]
    title: NotRequired[str | None]
    summary: NotRequired[str | None]
    url: NotRequired[str | None]
    item_key: NotRequired[str | None]
    source: NotRequired[str | None]
    published: NotRequired[str | None]
    seen_at: NotRequired[str]
    topics: NotRequired[list[str]]
    facts: NotRequired[dict[str, Any]]
    baseline: NotRequired[bool]
    evidence: NotRequired[Evidence]
    follow: NotRequired[list[str]]  # ids of the events decided with it


class StoryStarted(StoryFiled):
    level: NotRequired[None]


class StoryMerged(StoryFiled):
    level: str  # item|story|event: how it matched an earlier story


# -- state --------------------------------------------------------------------------


class StateChanged(TypedDict):
    topic: str
    before: dict[str, Any] | None
    after: dict[str, Any]
    since: str
    key: NotRequired[str]  # older logs: derived from topic and after
    dated: NotRequired[bool]
    evidence: NotRequired[Evidence]
    evidence_all: NotRequired[list[Evidence]]
    confirmed_by: NotRequired[str]
    claims: NotRequired[list[str]]
    story: NotRequired[str]
    item_event: NotRequired[str]
    baseline: NotRequired[bool]


class ChangeReported(TypedDict):
    claim: str
    topic: str
    key: str
    after: dict[str, Any]
    since: str
    before: NotRequired[dict[str, Any] | None]
    publisher: NotRequired[str | None]
    story: NotRequired[str]
    item_event: NotRequired[str]
    evidence: NotRequired[Evidence]


# -- alerts and deliveries ----------------------------------------------------------


class AlertRaised(TypedDict):
    """An alert, and the alert record (``sorawatch.projections.alerts``) it becomes."""

    alert_id: str
    topic: str
    kind: str
    story: str
    sources: list[Source]
    topics: NotRequired[list[str]]
    before: NotRequired[dict[str, Any] | None]
    after: NotRequired[dict[str, Any]]
    changes: NotRequired[list[Told]]
    confirmed: NotRequired[bool]
    want: NotRequired[dict[str, str]]  # channel → the subscription kind it wants
    facts: NotRequired[dict[str, Any]]
    title: NotRequired[str | None]
    title_lang: NotRequired[str | None]
    summary: NotRequired[str | None]
    raised_at: NotRequired[str]
    baseline: NotRequired[bool]
    signature: NotRequired[str]  # news alerts of older logs


class DeliveryOutcomes(TypedDict):
    """A batch's outcomes of one status (``delivery.succeeded|failed|abandoned``)."""

    alert_id: str
    channel: str
    results: list[Result]
    attempt: NotRequired[int]
    batch: NotRequired[str]


class DeliverySucceeded(DeliveryOutcomes):
    pass


class DeliveryFailed(DeliveryOutcomes):
    pass


class DeliveryAbandoned(DeliveryOutcomes):
    pass


class DeliveryRetried(TypedDict):
    alert_id: str
    channel: str
    recipients: list[str]


# -- subscribers --------------------------------------------------------------------


class SubscriberRequested(TypedDict):
    email: str
    lang: str
    topics: list[str]
    kinds: list[str]
    confirmed: NotRequired[bool]
    requested_at: NotRequired[str]
    cadence: NotRequired[str]
    tz: NotRequired[str]
    hour: NotRequired[int]
    max_per_day: NotRequired[int]


class SubscriberConfirmed(TypedDict):
    email: str
    confirmed_at: NotRequired[str]


class SubscriberUnsubscribed(TypedDict):
    email: str
    unsubscribed_at: NotRequired[str]


class SubscriberUpdated(TypedDict):
    email: str
    lang: NotRequired[str]
    topics: NotRequired[list[str]]
    kinds: NotRequired[list[str]]
    cadence: NotRequired[str]
    tz: NotRequired[str]
    hour: NotRequired[int]
    max_per_day: NotRequired[int]


class SubscriberTokensRevoked(TypedDict):
    email: str
    revoked_at: str


# -- webhooks -----------------------------------------------------------------------


class WebhookRegistered(TypedDict):
    webhook_id: str
    url: str
    lang: str
    topics: list[str]
    kinds: list[str]
    created_at: NotRequired[str]


class WebhookDisabled(TypedDict):
    webhook_id: str
    reason: str
    failing_since: NotRequired[str | None]


class WebhookEnabled(TypedDict):
    webhook_id: str


class WebhookRemoved(TypedDict):
    webhook_id: str


# Event type → the TypedDict of its data; a test holds it equal to the registry.
DATA: dict[str, type[Any]] = {
    "item.seen": ItemSeen,
    "item.revised": ItemRevised,
    "story.merged": StoryMerged,
    "story.started": StoryStarted,
    "state.changed": StateChanged,
    "change.reported": ChangeReported,
    "alert.raised": AlertRaised,
    "delivery.succeeded": DeliverySucceeded,
    "delivery.failed": DeliveryFailed,
    "delivery.abandoned": DeliveryAbandoned,
    "delivery.retried": DeliveryRetried,
    "subscriber.requested": SubscriberRequested,
    "subscriber.confirmed": SubscriberConfirmed,
    "subscriber.unsubscribed": SubscriberUnsubscribed,
    "subscriber.updated": SubscriberUpdated,
    "subscriber.tokens_revoked": SubscriberTokensRevoked,
    "webhook.registered": WebhookRegistered,
    "webhook.disabled": WebhookDisabled,
    "webhook.enabled": WebhookEnabled,
    "webhook.removed": WebhookRemoved,
}

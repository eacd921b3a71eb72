"""The admin API under ``/api/``: webhooks, subscribers, feeds, dead letters, replay.

Every route needs ``Authorization: Bearer <web.admin_token>`` (compared in
constant time); with no token configured the whole API answers 404.
"""

from __future__ import annotations

import contextlib
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from redis.exceptions import LockError

from sorawatch import schedule
from sorawatch.commands import endpoints, redelivery, subscriptions
from sorawatch.errors import ValidationError
from sorawatch.projections import ledger, subscribers, webhooks
from sorawatch.store import text
from sorawatch.web.errors import ApiError, error_model_responses
from sorawatch.web.models import (
    DeadLetterOut,
    DisableIn,
    FeedOut,
    ReplayOut,
    RetryIn,
    RetryOut,
    SubscriberChange,
    SubscriberOut,
    SubscriberPage,
    TokensRevoked,
    Unsubscribed,
    WebhookCreated,
    WebhookIn,
    WebhookOut,
)
from sorawatch.web.security import check_admin

REPLAY_LOCK_SECONDS = 900
REPLAY_WAIT = 10

router = APIRouter(
    prefix="/api",
    tags=["admin"],
    dependencies=[Depends(check_admin)],
    responses=error_model_responses(401, 404, 405, 413, 422, 429, 500),
)


def _webhook(hook: webhooks.Webhook) -> dict[str, Any]:
    return hook.to_dict()


# -- webhooks ---------------------------------------------------------------------


@router.post(
    "/webhooks",
    status_code=201,
    response_model=WebhookCreated,
    responses=error_model_responses(400),
)
def create_webhook(request: Request, body: WebhookIn) -> dict[str, Any]:
    """Register an endpoint. The response carries its signing secret, shown only once.

    400 when the URL is not http(s), does not resolve, or points inside the network.
    """
    state = request.app.state
    try:
        hook, secret = endpoints.register(
            state.log,
            body.url,
            secret=body.secret,
            lang=body.lang,
            topics=body.topics,
            kinds=body.kinds,
            allow_private=state.settings.webhooks.allow_private,
        )
    except ValidationError as exc:
        raise ApiError(400, str(exc)) from None
    except ValueError as exc:
        # urlsplit's own complaints ("Invalid IPv6 URL") from the URL check.
        raise ApiError(400, f"url {body.url!r}: {exc}") from None
    return {**_webhook(hook), "secret": secret}


@router.get("/webhooks", response_model=list[WebhookOut])
def list_webhooks(request: Request) -> list[dict[str, Any]]:
    """Every endpoint, active or disabled, oldest first (secrets are never listed)."""
    state = request.app.state
    return [_webhook(h) for h in webhooks.list_all(state.redis, state.keys)]


@router.get("/webhooks/{webhook_id}", response_model=WebhookOut)
def get_webhook(request: Request, webhook_id: str) -> dict[str, Any]:
    """One endpoint; 404 when unknown."""
    state = request.app.state
    hook = webhooks.get(state.redis, state.keys, webhook_id)
    if hook is None:
        raise ApiError(404, f"no webhook {webhook_id!r}")
    return _webhook(hook)


@router.post("/webhooks/{webhook_id}/disable", response_model=WebhookOut)
def disable_webhook(
    request: Request, webhook_id: str, body: DisableIn | None = None
) -> dict[str, Any]:
    """Stop deliveries to an endpoint (``webhook.disabled``); 404 when unknown."""
    reason = body.reason if body else DisableIn().reason
    hook = endpoints.disable(request.app.state.log, webhook_id, reason)
    if hook is None:
        raise ApiError(404, f"no webhook {webhook_id!r}")
    return _webhook(hook)


@router.post("/webhooks/{webhook_id}/enable", response_model=WebhookOut)
def enable_webhook(request: Request, webhook_id: str) -> dict[str, Any]:
    """Resume deliveries to an endpoint (``webhook.enabled``); 404 when unknown."""
    hook = endpoints.enable(request.app.state.log, webhook_id)
    if hook is None:
        raise ApiError(404, f"no webhook {webhook_id!r}")
    return _webhook(hook)


@router.delete("/webhooks/{webhook_id}", status_code=204, response_class=Response)
def delete_webhook(request: Request, webhook_id: str) -> Response:
    """Remove an endpoint and its secret (``webhook.removed``); 404 when unknown."""
    if not endpoints.remove(request.app.state.log, webhook_id):
        raise ApiError(404, f"no webhook {webhook_id!r}")
    return Response(status_code=204)


# -- subscribers ------------------------------------------------------------------


@router.get("/subscribers", response_model=SubscriberPage)
def list_subscribers(
    request: Request,
    status: Literal["pending", "confirmed", "unsubscribed"] | None = None,
    offset: int = Query(default=0, ge=0, le=10_000_000),
    limit: int = Query(default=100, ge=1, le=1000),
) -> dict[str, Any]:
    """Subscribers ordered by address, a page at a time, with the total.

    Unconfirmed requests from the form are not listed: they stay outside the log
    until confirmed and expire after 48 hours (look one up by its address)."""
    state = request.app.state
    items = subscribers.list_all(state.redis, state.keys, status, offset, limit)
    return {
        "total": subscribers.count(state.redis, state.keys, status),
        "offset": offset,
        "limit": limit,
        "items": [s.to_dict() for s in items],
    }


@router.get("/subscribers/{email}", response_model=SubscriberOut)
def get_subscriber(request: Request, email: str) -> dict[str, Any]:
    """One subscriber by address; 404 when unknown."""
    state = request.app.state
    sub = subscribers.get(state.redis, state.keys, email)
    if sub is None:
        raise ApiError(404, f"no subscriber {email!r}")
    return sub.to_dict()


@router.patch("/subscribers/{email}", response_model=SubscriberOut)
def change_subscriber(request: Request, email: str, body: SubscriberChange) -> dict[str, Any]:
    """Change a subscriber's language, topics, kinds or cadence (``subscriber.updated``).

    404 for an unknown or unsubscribed address; 400 naming a bad value (a time zone
    that is not an IANA one)."""
    state = request.app.state
    try:
        timing = schedule.choose(body.cadence, body.tz, body.hour, body.max_per_day)
        sub = subscriptions.update(
            state.log, email, body.lang, body.topics, body.kinds, timing=timing
        )
    except ValidationError as exc:
        raise ApiError(400, str(exc)) from None
    if sub is None:
        raise ApiError(404, f"no subscriber {email!r}")
    return sub.to_dict()


@router.delete("/subscribers/{email}", response_model=Unsubscribed)
def delete_subscriber(request: Request, email: str) -> dict[str, Any]:
    """Unsubscribe an address (``subscriber.unsubscribed``; the log keeps its history).

    404 when the address is unknown; ``unsubscribed: false`` when it already was.
    """
    state = request.app.state
    if subscribers.get(state.redis, state.keys, email) is None:
        raise ApiError(404, f"no subscriber {email!r}")
    done = subscriptions.unsubscribe(state.log, email)
    return {"email": email.strip().lower(), "unsubscribed": done}


@router.post("/subscribers/{email}/revoke-tokens", response_model=TokensRevoked)
def revoke_subscriber_tokens(request: Request, email: str) -> dict[str, Any]:
    """Refuse every unsubscribe and preferences link signed for the address until now
    (``subscriber.tokens_revoked``): for a link that leaked. Later mails carry new ones.

    404 when the address is not in the log.
    """
    state = request.app.state
    if not subscriptions.revoke_tokens(state.log, email):
        raise ApiError(404, f"no subscriber {email!r}")
    return {"email": email.strip().lower(), "revoked": True}


# -- feeds ------------------------------------------------------------------------


@router.get("/feeds", response_model=list[FeedOut])
def list_feeds(request: Request) -> list[dict[str, Any]]:
    """The configured feeds with the health the watcher records for each."""
    state = request.app.state
    feeds = state.settings.feeds
    with state.redis.pipeline(transaction=False) as pipe:
        for feed in feeds:
            pipe.hgetall(state.keys.feed_health(feed.url))
        healths = pipe.execute()
    return [
        {
            "url": feed.url,
            "name": feed.name,
            "lang": feed.lang,
            "interval": feed.interval,
            "health": {text(k): _number(text(v)) for k, v in raw.items()},
        }
        for feed, raw in zip(feeds, healths, strict=True)
    ]


def _number(value: str | None) -> str | int | float | None:
    """The watcher writes a hash of strings: give counts and durations back as numbers."""
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        pass
    try:
        number = float(value)
    except ValueError:
        return value
    return number if number == number and abs(number) != float("inf") else value


# -- dead letters -----------------------------------------------------------------


@router.get("/dead-letters", response_model=list[DeadLetterOut])
def list_dead_letters(
    request: Request,
    alert_id: str | None = Query(default=None, max_length=200),
    channel: Literal["email", "webhook"] | None = None,
) -> list[dict[str, Any]]:
    """Deliveries abandoned after their last try (or failed permanently), oldest first."""
    state = request.app.state
    return ledger.dead_letters(state.redis, state.keys, alert_id=alert_id, channel=channel)


@router.post("/dead-letters/retry", response_model=RetryOut)
def retry_dead_letters(request: Request, body: RetryIn | None = None) -> dict[str, int]:
    """Put dead letters (all, or of one alert and/or channel) back on their queue."""
    state = request.app.state
    body = body or RetryIn()
    letters = redelivery.retry_dead_letters(
        state.log,
        alert_id=body.alert_id,
        channel=body.channel,
        batch_size=state.settings.workers.batch_size,
    )
    return {"retried": len(letters)}


# -- replay -----------------------------------------------------------------------


@router.post("/replay", response_model=ReplayOut, responses=error_model_responses(409))
async def replay(request: Request) -> dict[str, Any]:
    """Rebuild every projection from the event log; returns what was re-applied.

    Holds the change-processing lock meanwhile, so no alert is decided on a half-
    rebuilt state; 409 when it cannot be taken within a few seconds. Deliveries
    finishing during a replay are re-applied by their own jobs, whose events are
    in the log.
    """
    state = request.app.state
    result: dict[str, Any] = await run_in_threadpool(_replay, state)
    return result


def _replay(state: Any) -> dict[str, Any]:
    from sorawatch.projections import replay as replaying

    lock = state.redis.lock(
        state.keys.changes_lock, timeout=REPLAY_LOCK_SECONDS, blocking_timeout=REPLAY_WAIT
    )
    if not lock.acquire():
        raise ApiError(409, "change processing holds the lock; try the replay again shortly")
    try:
        counts = replaying.replay(state.redis, state.keys, state.log)
    finally:
        with contextlib.suppress(LockError):
            lock.release()
    events = int(counts.pop("events", 0))
    deleted = int(counts.pop("deleted_keys", 0))
    return {"events": events, "deleted_keys": deleted, "by_type": counts}

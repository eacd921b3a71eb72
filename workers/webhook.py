"""Signed webhook delivery (Standard Webhooks), concurrently across endpoints.

``deliver_webhooks(alert_id, webhook_ids, attempt)`` (queue ``webhook``) POSTs one
JSON body ``{"type", "timestamp", "data"}`` to each active endpoint, signed with its
``whsec_`` secret (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``).
The ``webhook-id`` derives from alert + endpoint, so every retry carries the same
one and a consumer can drop duplicates. Redirects are not followed; only 2xx is
success; timeouts, 429 (``Retry-After`` honoured) and 5xx are retried on
``webhooks.retry_schedule``; 410 disables the endpoint, and so does failing
without a break for ``webhooks.disable_after`` seconds. Connections go only to
public addresses (checked on the resolved address) unless ``allow_private``.

An endpoint cannot hold a worker: ``webhooks.timeout`` bounds each request as a
whole (connect, send, status, body), not each read, so one dripping a byte a second
fails at the deadline; and at most ``MAX_RESPONSE`` bytes of any response are read
(the body is only drained so the connection can be reused), so a huge body costs
no memory.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
from redis import Redis
from standardwebhooks import Webhook as Signer

from sorawatch import clock, netguard, render, store
from sorawatch.commands import endpoints
from sorawatch.events import EventLog, utcnow
from sorawatch.keys import Keys, digest
from sorawatch.projections import webhooks
from sorawatch.projections._common import epoch, loads, text
from sorawatch.retry_after import parse_retry_after
from sorawatch.settings import Settings
from sorawatch.workers import runtime, waits
from sorawatch.workers.channels.webhook import CHANNEL as WEBHOOK
from sorawatch.workers.marks import SentMarks
from sorawatch.workers.retry import Outcome, finish

TYPES = {
    ("status", "change"): "sora.status.changed",
    ("pricing", "change"): "sora.pricing.changed",
    ("partnership", "change"): "sora.partnership.announced",
}
USER_AGENT = "sorawatch-webhooks/0.1"
MAX_RESPONSE = 64 * 1024  # bytes of a response body read at most; the rest is dropped


STORY_TYPES = {
    "story": "sora.story",
    "update": "sora.story.updated",
    "early": "sora.story.reported",
}


def event_type(alert: Mapping[str, Any]) -> str:
    """``sora.status.changed`` / ``sora.pricing.changed`` / ``sora.partnership.announced``
    (``.ended``) for one change; ``sora.story`` for a story's first message carrying
    all its changes, ``sora.story.updated`` for its update; ``sora.news`` for news."""
    kind = str(alert.get("kind"))
    if kind in STORY_TYPES:
        return STORY_TYPES[kind]
    if alert.get("topic") == "partnership" and (alert.get("after") or {}).get("active") is False:
        return "sora.partnership.ended"
    return TYPES.get((alert.get("topic"), kind), "sora.news")  # type: ignore[arg-type]


def payload(alert: Mapping[str, Any]) -> dict[str, Any]:
    """The body: what changed, headline and summary in both languages, the sources."""
    data: dict[str, Any] = {
        "alert_id": alert["alert_id"],
        "topic": alert.get("topic"),
        "kind": alert.get("kind"),
        "headline": {lang: render.headline(alert, lang) for lang in ("en", "ar")},
        "summary": {lang: render.summary(alert, lang) for lang in ("en", "ar")},
        "sources": [
            {
                "url": s.get("url"),
                "title": s.get("title"),
                "publisher": s.get("publisher"),
                "language": s.get("lang"),
                "published": s.get("published"),
            }
            for s in alert.get("sources") or ()
        ],
        "raised_at": alert.get("raised_at"),
    }
    if alert.get("kind") in render.CHANGE_KINDS:
        data["before"] = alert.get("before")
        data["after"] = alert.get("after")
    if alert.get("changes"):
        data["changes"] = [
            {k: c.get(k) for k in ("topic", "before", "after", "confirmed_by")}
            for c in alert["changes"]
        ]
    return {
        "type": event_type(alert),
        "timestamp": alert.get("raised_at") or utcnow(),
        "data": data,
    }


def message_id(alert_id: str, webhook_id: str) -> str:
    """The same ``webhook-id`` for every attempt of one alert to one endpoint."""
    return "msg_" + digest(f"{alert_id}\x1f{webhook_id}", 32)


def sign(secret: str, msg_id: str, body: str, when: datetime) -> dict[str, str]:
    """The Standard Webhooks headers for ``body``."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": Signer(secret).sign(msg_id, when, body),
    }


async def post_one(
    client: httpx.AsyncClient,
    url: str,
    body: str,
    headers: dict[str, str],
    deadline: float | None = None,
) -> Outcome:
    """POST once and classify: 2xx sent; 429/5xx/408/timeouts transient; 410 and
    other statuses (3xx included: redirects are not followed) permanent.

    ``deadline`` (seconds) bounds the whole request, body included; at most
    ``MAX_RESPONSE`` bytes of the response are read."""
    try:
        with waits.waiting(f"webhook POST to {_host(url)}"):
            async with asyncio.timeout(deadline):
                response = await _post(client, url, body, headers)
    except TimeoutError:
        return Outcome(url, False, error=f"timeout: no complete answer within {deadline}s")
    except httpx.TimeoutException as exc:
        return Outcome(url, False, error=f"timeout: {type(exc).__name__}")
    except httpx.InvalidURL as exc:  # not an HTTPError: uncaught, it failed the whole batch
        return Outcome(url, False, error=f"invalid URL: {exc}", permanent=True)
    except httpx.HTTPError as exc:
        if netguard.is_refusal(exc):
            return Outcome(url, False, error=str(exc), permanent=True)
        return Outcome(url, False, error=f"{type(exc).__name__}: {exc}")
    code = response.status_code
    extra = {"code": code}
    if 200 <= code < 300:
        return Outcome(url, True, extra=extra)
    error = f"HTTP {code}"
    if code == 429 or code >= 500 or code == 408:
        wait = parse_retry_after(response.headers.get("retry-after"))
        return Outcome(url, False, error=error, retry_after=wait, extra=extra)
    return Outcome(url, False, error=error, permanent=True, extra=extra)


async def _post(
    client: httpx.AsyncClient, url: str, body: str, headers: dict[str, str]
) -> httpx.Response:
    """POST and read at most ``MAX_RESPONSE`` bytes of the answer. A longer body is
    not read: closing the response then drops the connection instead of draining it."""
    request = client.build_request(
        "POST",
        url,
        content=body.encode("utf-8"),
        headers={**headers, "content-type": "application/json", "user-agent": USER_AGENT},
    )
    response = await client.send(request, stream=True)
    try:
        read = 0
        async for chunk in response.aiter_raw():
            read += len(chunk)
            if read > MAX_RESPONSE:
                break
    finally:
        await response.aclose()
    return response


def _host(url: str) -> str:
    """The endpoint's host, for logs: a URL's path and query may carry a token."""
    try:
        return httpx.URL(url).host or "?"
    except httpx.InvalidURL:
        return "?"


async def send_batch(
    log: EventLog,
    settings: Settings,
    alert_id: str,
    webhook_ids: Sequence[str],
    attempt: int = 0,
    tag: str = "",
    client: httpx.AsyncClient | None = None,
) -> dict[str, int]:
    """Deliver one alert to a batch of endpoints; returns counts sent/retry/abandoned.

    Raises EventError when the alert is unknown. Writes sent marks, delivery events,
    the ledger, retry jobs, and ``webhook.disabled`` for 410 or endless failure.
    """
    redis, keys = log.redis, log.keys
    opening = WEBHOOK.start(log, alert_id, webhook_ids, attempt, tag)
    alert, batch, ids, done = opening.alert, opening.batch, opening.recipients, opening.done
    outcomes = [
        Outcome(w, True, extra={"webhook_id": w, "recovered": True}) for w in opening.recovered
    ]
    body = json.dumps(payload(alert), ensure_ascii=False, separators=(",", ":"))
    hooks, secrets = _read_batch(redis, keys, [w for w in ids if w not in done], outcomes)
    if not hooks:
        return finish(log, batch, ids, outcomes, WEBHOOK.schedule(settings), settings)
    marks = SentMarks(store.connect_async(settings), keys, alert_id, "webhook")

    async def one(http: httpx.AsyncClient, hook: webhooks.Webhook) -> Outcome:
        secret = secrets.get(hook.id)
        if secret is None:
            extra = {"webhook_id": hook.id}
            return Outcome(hook.id, False, "no signing secret", permanent=True, extra=extra)
        # The real time, not the clock: receivers check it against theirs (replay attacks).
        headers = sign(secret, message_id(alert_id, hook.id), body, datetime.now(UTC))
        out = await post_one(http, hook.url, body, headers, settings.webhooks.timeout)
        extra = {**out.extra, "webhook_id": hook.id}
        result = Outcome(hook.id, out.ok, out.error, out.permanent, out.retry_after, extra)
        if result.ok:
            # Marked at once, and the endpoint's failure streak ends, in one grouped write.
            await marks.mark(hook.id, forget=[keys.failing_since(hook.id)])
        else:
            _after(log, settings, hook, result)
        return result

    # Lanes, each with its own one-connection client (unless a client is given), pull
    # the next endpoint when done: httpcore's pool does work per request that grows
    # with its connections (a 16-connection pool is half as fast as 16 of one).
    todo = list(enumerate(hooks))
    todo.reverse()
    results: list[Outcome | None] = [None] * len(hooks)

    async def lane(http: httpx.AsyncClient) -> None:
        while todo:
            index, hook = todo.pop()
            results[index] = await one(http, hook)

    count = min(settings.webhooks.concurrency, len(hooks))
    if client is not None:
        clients, own = [client] * count, False
    else:
        context = httpx.create_ssl_context(trust_env=False)  # shared: built once per job
        clients, own = [new_client(settings, 1, context) for _ in range(count)], True
    try:
        await asyncio.gather(*(lane(http) for http in clients))
    finally:
        try:
            if own:
                for http in clients:
                    await http.aclose()
        finally:
            await marks.client.aclose()
    outcomes += [r for r in results if r is not None]
    return finish(log, batch, ids, outcomes, WEBHOOK.schedule(settings), settings)


def _read_batch(
    redis: Redis, keys: Keys, ids: Sequence[str], outcomes: list[Outcome]
) -> tuple[list[webhooks.Webhook], dict[str, str]]:
    """The active endpoints of ``ids`` and their secrets, read in one round trip.
    Endpoints disabled or removed since the fan-out are added to ``outcomes`` as
    visible dead letters (retryable by hand)."""
    if not ids:
        return [], {}
    with redis.pipeline(transaction=False) as pipe:
        pipe.mget([webhooks.record_key(keys, w) for w in ids])
        pipe.hmget(keys.webhook_secrets, list(ids))
        records, raw_secrets = pipe.execute()
    hooks: list[webhooks.Webhook] = []
    secrets: dict[str, str] = {}
    for wid, raw, secret in zip(ids, records, raw_secrets, strict=True):
        data = loads(raw) if raw is not None else None
        hook = webhooks.Webhook.from_dict(data) if data else None
        if hook is not None and hook.active:
            hooks.append(hook)
            if secret is not None:
                secrets[wid] = text(secret) or ""
        else:
            why = (
                "endpoint removed" if hook is None else f"endpoint disabled: {hook.disabled_reason}"
            )
            outcomes.append(Outcome(wid, False, why, permanent=True, extra={"webhook_id": wid}))
    return hooks, secrets


def _after(log: EventLog, settings: Settings, hook: webhooks.Webhook, result: Outcome) -> None:
    """After a failure: track continuous failure; disable on 410 or too long failing."""
    redis, keys = log.redis, log.keys
    key = keys.failing_since(hook.id)
    if result.extra.get("code") == 410:
        endpoints.disable(log, hook.id, "410 Gone")
        return
    redis.set(key, utcnow(), nx=True)
    since = redis.get(key)
    since_text = store.text(since)
    failing_for = clock.timestamp() - epoch(since_text)
    if failing_for >= settings.webhooks.disable_after:
        endpoints.disable(
            log, hook.id, f"failing since {since_text}: {result.error}", failing_since=since_text
        )


def new_client(
    settings: Settings, connections: int | None = None, ssl_context: ssl.SSLContext | None = None
) -> httpx.AsyncClient:
    """A client for a job: no redirects, the configured timeout, the address guard;
    ``connections`` defaults to ``webhooks.concurrency``."""
    return httpx.AsyncClient(
        transport=netguard.GuardedTransport(
            settings.webhooks.allow_private,
            max_connections=connections or settings.webhooks.concurrency,
            ssl_context=ssl_context,
        ),
        timeout=httpx.Timeout(settings.webhooks.timeout),
        follow_redirects=False,
        trust_env=False,
    )


def deliver_webhooks(
    alert_id: str, webhook_ids: list[str], attempt: int = 0, tag: str = ""
) -> dict[str, int]:
    """RQ job (queue ``webhook``): deliver ``alert_id`` to ``webhook_ids``."""
    rt = runtime.current()
    return asyncio.run(send_batch(rt.log, rt.settings, alert_id, webhook_ids, attempt, tag))

"""Every Redis key sorawatch writes, in one place, under one prefix.

The event log is the source of truth; projections can be rebuilt by
``sorawatch replay``; operational keys may be lost without losing data.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass


def digest(value: str, size: int = 16) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:size]


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "sw"

    # -- the log (source of truth) --
    @property
    def events(self) -> str:
        return f"{self.prefix}:events"

    def event_index(self, event_id: str) -> str:
        return f"{self.prefix}:event:{event_id}"

    # -- operational state (safe to lose) --
    @property
    def metrics(self) -> str:
        return f"{self.prefix}:metrics"

    @property
    def feeds_due(self) -> str:
        return f"{self.prefix}:feeds:due"

    def feed_health(self, url: str) -> str:
        return f"{self.prefix}:feed:{digest(url)}:health"

    def feed_validators(self, url: str) -> str:
        return f"{self.prefix}:feed:{digest(url)}:http"

    def feed_items(self, url: str) -> str:
        return f"{self.prefix}:feed:{digest(url)}:items"

    def feed_lease(self, url: str) -> str:
        return f"{self.prefix}:feed:{digest(url)}:lease"

    @property
    def secret(self) -> str:
        return f"{self.prefix}:secret"

    @property
    def webhook_secrets(self) -> str:
        """Webhook signing secrets, id → secret: never in the log, untouched by replay."""
        return f"{self.prefix}:secrets:webhooks"

    @property
    def changes_lock(self) -> str:
        """Serialises change processing (dedupe, state fold, alerts) across workers."""
        return f"{self.prefix}:lock:changes"

    def pending(self, email: str) -> str:
        """An unconfirmed subscribe request (JSON, expires after ``web.pending_ttl``):
        kept out of the log until confirmed, so an abandoned request leaves nothing."""
        return f"{self.prefix}:pending:{digest(email, 32)}"

    def confirm_mail(self, mailbox: str) -> str:
        """Set when a confirmation mail goes to ``mailbox`` (case and +tag folded);
        expires after ``web.confirm_interval``: at most one such mail per interval."""
        return f"{self.prefix}:confirm-mail:{digest(mailbox, 32)}"

    def rate_limit(self, scope: str, ident: str) -> str:
        """A per-hour request counter (web subscribe form); expires on its own."""
        return f"{self.prefix}:rate:{scope}:{digest(ident)}"

    @property
    def smtp_rate(self) -> str:
        """The deployment's shared mail rate (``smtp.rate``): a GCRA limiter's state."""
        return f"{self.prefix}:smtp:rate"

    def queue(self, name: str) -> str:
        """The RQ queue ``name`` (``changes``, ``email``, ``webhook``) of this deployment.

        RQ keeps every queue under its own global ``rq:`` namespace, so two deployments
        on one Redis are kept apart by the queue name itself (and the job ids, see
        ``sorawatch.events.queue``): ``sw.email`` and ``tenantb.email``.
        """
        return f"{self.prefix}.{name}"

    @property
    def job_prefix(self) -> str:
        """Put before every RQ job id this deployment makes (job ids are global in RQ)."""
        return re.sub(r"[^A-Za-z0-9_-]", "_", self.prefix) + "-"

    def projection(self, name: str) -> str:
        """Namespace for one projection's keys; `replay` deletes and rebuilds it."""
        return f"{self.prefix}:p:{name}"

    def digest_sent(self) -> str:
        """Subscriber → the end (epoch seconds) of the last digest period done for them:
        operational, so a replay, which rebuilds the schedule, sends no period twice."""
        return f"{self.prefix}:digest:sent"

    def digest_held(self, email: str) -> str:
        """Alerts past an instant subscriber's daily cap (id → when held), waiting for
        the digest at their hour."""
        return f"{self.prefix}:digest:held:{email}"

    def digest_held_due(self) -> str:
        """Subscribers with held alerts → when their catch-up digest is due (epoch)."""
        return f"{self.prefix}:digest:held-due"

    def digest_tick(self) -> str:
        """Held while one process enqueues the digests due (workers on many hosts)."""
        return f"{self.prefix}:digest:tick"

    def sent_marks(self, delivery_id: str, channel: str) -> str:
        """Recipients a delivery (an alert or a digest) was sent to on ``channel``, marked
        the moment the server accepted it: operational, so replay leaves them alone."""
        return f"{self.prefix}:delivery:sent:{delivery_id}:{channel}"

    def fanout_plan(self, alert_id: str) -> str:
        """An alert's batch plan (JSON), written once, deleted when its jobs are enqueued."""
        return f"{self.prefix}:fanout:{alert_id}:plan"

    def fanout_done(self, alert_id: str) -> str:
        """Set in the MULTI that enqueues an alert's batch jobs: a re-run enqueues nothing."""
        return f"{self.prefix}:fanout:{alert_id}:done"

    def failing_since(self, webhook_id: str) -> str:
        """Since when an endpoint has failed without a success in between (operational)."""
        return f"{self.prefix}:webhook:{webhook_id}:failing_since"

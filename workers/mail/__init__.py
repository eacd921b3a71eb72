"""Mail backends: one small interface (``base.Mailer``), one module per backend.

``build(settings)`` picks SMTP when ``smtp.host`` is set, else the outbox folder;
with ``smtp.rate`` the SMTP mailer paces itself by the deployment's shared rate.
"""

from __future__ import annotations

from sorawatch.keys import Keys
from sorawatch.settings import Settings
from sorawatch.workers.mail.base import Mailer, SendResult
from sorawatch.workers.mail.rate import RateLimiter


def build(settings: Settings) -> Mailer:
    """The mailer the settings ask for: SMTP (aiosmtplib) or ``.eml`` files in the outbox."""
    if settings.smtp.host:
        from sorawatch.workers.mail.smtp import SmtpMailer

        return SmtpMailer(settings.smtp, limiter(settings))
    from sorawatch.workers.mail.outbox import OutboxMailer

    return OutboxMailer(settings.outbox_dir)


def limiter(settings: Settings) -> RateLimiter | None:
    """The deployment's shared mail rate limiter, or None when ``smtp.rate`` is 0."""
    if settings.smtp.rate <= 0:
        return None
    from sorawatch import store

    return RateLimiter(
        lambda: store.connect_async(settings), Keys(settings.redis.prefix), settings.smtp.rate
    )


__all__ = ["Mailer", "SendResult", "build", "limiter"]

"""Mail backends: one small interface (``base.Mailer``), one module per backend.

``build(settings)`` picks SMTP when ``smtp.host`` is set, else the outbox folder.
"""

from __future__ import annotations

from sorawatch.settings import Settings
from workers.mail.base import Mailer, SendResult


def build(settings: Settings) -> Mailer:
    """The mailer the settings ask for: SMTP (aiosmtplib) or ``.eml`` files in the outbox."""
    if settings.smtp.host:
        from workers.mail.smtp import SmtpMailer

        return SmtpMailer(settings.smtp)
    from workers.mail.outbox import OutboxMailer

    return OutboxMailer(settings.outbox_dir)


__all__ = ["Mailer", "SendResult", "build"]

"""The mail interface every backend implements."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol


@dataclass(frozen=True, slots=True)
class SendResult:
    """One message's fate. ``permanent`` only matters when ``ok`` is false:
    an SMTP 5xx is permanent, a 4xx, a timeout or a dropped connection is not."""

    recipient: str
    ok: bool
    code: int | None = None
    error: str | None = None
    permanent: bool = False


class Mailer(Protocol):
    """Sends single-recipient messages; a refusal is a result, never an exception.

    Implementations may send several messages at once (``send`` is awaited
    concurrently) and reuse connections between them; ``close`` ends them.
    """

    async def send(self, message: EmailMessage) -> SendResult: ...

    async def close(self) -> None: ...


def recipient_of(message: EmailMessage) -> str:
    """The one address a message is for (its ``To``)."""
    return str(message["To"] or "").strip()

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


@dataclass(frozen=True, slots=True)
class RawMessage:
    """A message already flattened to 7-bit wire bytes (CRLF lines) for one recipient:
    sent as it is, no ``email`` package on the way (see ``sorawatch.workers.mail.template``)."""

    sender: str
    recipient: str
    data: bytes


class Mailer(Protocol):
    """Sends single-recipient messages; a refusal is a result, never an exception.

    Implementations may send several messages at once (``send`` is awaited
    concurrently) and reuse connections between them; ``close`` ends them.
    """

    async def send(self, message: EmailMessage | RawMessage) -> SendResult: ...

    async def close(self) -> None: ...


def recipient_of(message: EmailMessage | RawMessage) -> str:
    """The one address a message is for (its ``To``)."""
    if isinstance(message, RawMessage):
        return message.recipient
    return str(message["To"] or "").strip()

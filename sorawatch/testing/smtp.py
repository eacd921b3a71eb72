"""A real SMTP server: aiosmtpd's Controller on 127.0.0.1 and a free port.

It records every accepted message (parsed, with its envelope) and can be told to
answer a code for chosen recipients (``refuse``) or for the next N messages
(``fail_next``), so tests see what a user's mailbox would.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from sorawatch.testing.ports import free_port

_TEXT = {
    421: "421 4.3.2 Service shutting down",
    450: "450 4.2.1 Mailbox busy, try again later",
    451: "451 4.3.0 Local error, try again later",
    550: "550 5.1.1 No such user here",
    552: "552 5.2.2 Mailbox full",
    554: "554 5.7.1 Rejected",
}


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage
    raw: bytes


@dataclass
class Recorder:
    messages: list[Received] = field(default_factory=list)
    refused: dict[str, int] = field(default_factory=dict)  # recipient → code, every time
    failures: list[int] = field(default_factory=list)  # codes for the next messages
    scripted: dict[str, list[int]] = field(default_factory=dict)  # recipient → next codes
    delay: float = 0.0  # seconds to wait before accepting each message (a slow server)
    answered: list[tuple[str, int]] = field(default_factory=list)  # every RCPT answer
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        with self.lock:
            code = self.refused.get(address.lower())
            queued = self.scripted.get(address.lower())
            if code is None and queued:
                code = queued.pop(0)
            if code is None and self.failures:
                code = self.failures.pop(0)
            self.answered.append((address.lower(), code or 250))
        if code is not None:
            return _TEXT.get(code, f"{code} scripted answer")
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        raw = bytes(envelope.original_content or envelope.content)
        parsed = message_from_bytes(raw, policy=policy.default)
        with self.lock:
            self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), parsed, raw))
        return "250 Message accepted for delivery"


class SmtpServer:
    """``with SmtpServer() as smtp:``; ``smtp.port``, ``smtp.messages``, scripting."""

    def __init__(self, auth: tuple[str, str] | None = None, *, smtputf8: bool = True) -> None:
        """``auth``: require AUTH with this login and password (over plain text: tests only);
        ``smtputf8``: advertise SMTPUTF8 (non-ASCII addresses)."""
        self.recorder = Recorder()
        self.port = free_port()
        options: dict[str, Any] = {}
        if auth is not None:
            login, password = auth[0].encode(), auth[1].encode()

            def check(
                server: Any, session: Any, envelope: Any, mechanism: str, data: Any
            ) -> AuthResult:
                ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
                    login,
                    password,
                )
                return AuthResult(success=ok, handled=False)

            options = {"authenticator": check, "auth_required": True, "auth_require_tls": False}
        options["enable_SMTPUTF8"] = smtputf8
        self.controller = Controller(self.recorder, hostname="127.0.0.1", port=self.port, **options)

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    @property
    def messages(self) -> list[Received]:
        with self.recorder.lock:
            return list(self.recorder.messages)

    def to(self, address: str) -> list[EmailMessage]:
        """Messages delivered to ``address``."""
        return [
            m.message for m in self.messages if address.lower() in [r.lower() for r in m.recipients]
        ]

    def refuse(self, address: str, code: int = 550) -> None:
        """Answer ``code`` to every RCPT for ``address``."""
        with self.recorder.lock:
            self.recorder.refused[address.lower()] = code

    def script(self, address: str, codes: list[int]) -> None:
        """Answer ``codes`` in turn to the next RCPTs for ``address``, then accept it."""
        with self.recorder.lock:
            self.recorder.scripted[address.lower()] = list(codes)

    def fail_next(self, count: int, code: int = 450) -> None:
        """Answer ``code`` to the next ``count`` recipients, whoever they are."""
        with self.recorder.lock:
            self.recorder.failures.extend([code] * count)

    def clear(self) -> None:
        with self.recorder.lock:
            self.recorder.messages.clear()
            self.recorder.refused.clear()
            self.recorder.failures.clear()
            self.recorder.scripted.clear()
            self.recorder.answered.clear()

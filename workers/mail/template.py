"""An alert mail flattened once per language, filled in per recipient as bytes.

Building an ``EmailMessage`` and flattening it costs about 2 ms per message in
the ``email`` package (header objects, content managers, the generator): at
10,000 subscribers that, not SMTP, was the bottleneck. A ``MailTemplate`` builds
the parts every recipient shares once (From and Subject encoded by the ``email``
package itself, the MIME skeleton, each body's base64 up to the line where the
token first appears) and per recipient only writes To, Date, Message-ID and
List-Unsubscribe and base64-encodes the rest of the two bodies with the token
substituted. The result is what ``compose`` sends, as 7-bit wire bytes:
``multipart/alternative`` (text, then HTML), RFC 2047 subject, RFC 8058 headers.

One difference on purpose: ``List-Unsubscribe`` is written as the plain
``<https://…>`` RFC 2369 asks for; the ``email`` package folds a long URL into
RFC 2047 encoded-words there, which mail clients do not decode in that header.
Recipients or URLs that are not ASCII take the ``compose`` path (``fits``).
Subject, Content-Type and List-Unsubscribe are folded by ``sorawatch.workers.mail.headers``.
"""

from __future__ import annotations

import base64
import secrets
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

from sorawatch import clock
from sorawatch.workers.mail.base import RawMessage
from sorawatch.workers.mail.headers import fold

_CRLF = b"\r\n"
# Base64 is written 57 bytes (one 76-character line) at a time: the lines of a body's
# first k × 57 bytes do not depend on what follows them.
_LINE = 57


def _b64(data: bytes) -> bytes:
    """Base64 in 76-character CRLF lines, as the ``email`` package writes it."""
    return base64.encodebytes(data).replace(b"\n", _CRLF)


class _Body:
    """One body part: its base64 lines before the token's first line encoded once,
    the rest (with the placeholder) encoded per recipient."""

    def __init__(self, subtype: str, text: str, placeholder: bytes) -> None:
        data = text.encode("utf-8")
        first = data.find(placeholder)
        cut = len(data) if first < 0 else first - first % _LINE
        self.head = (
            f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n".encode("ascii")
        ) + _b64(data[:cut])
        self.rest = data[cut:]

    def encoded(self, placeholder: bytes, token: bytes) -> bytes:
        return self.head + _b64(self.rest.replace(placeholder, token)) if self.rest else self.head


class MailTemplate:
    """One rendered alert (subject, text, HTML with a token placeholder) for many
    recipients; ``message(...)`` gives one recipient's wire bytes."""

    def __init__(
        self,
        *,
        sender: str,
        subject: str,
        text: str,
        html: str,
        placeholder: str,
        domain: str,
        list_id: str,
    ) -> None:
        head = EmailMessage(policy=policy.SMTP)
        head["From"] = sender
        self._head = head.as_bytes().split(_CRLF + _CRLF, 1)[0] + _CRLF + fold("Subject", subject)
        self._list = f"List-Id: {list_id}\r\n".encode("ascii")
        self.sender = parseaddr(sender)[1]
        self.subject = subject
        self.text = text
        self.html = html
        self._placeholder = placeholder.encode("ascii")
        self._domain = domain
        # No '-' in the base64 alphabet: a boundary with one never occurs in a body.
        boundary = f"sorawatch-{secrets.token_hex(12)}"
        self._mime = (
            b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
            b"Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n"
            + fold("Content-Type", f'multipart/alternative; boundary="{boundary}"')
            + _CRLF
        )
        self._separator = f"--{boundary}\r\n".encode("ascii")
        self._end = f"\r\n--{boundary}--\r\n".encode("ascii")
        self._bodies = (
            _Body("plain", text, self._placeholder),
            _Body("html", html, self._placeholder),
        )
        self._date: tuple[tuple[int, timedelta | None], str] = ((0, None), "")

    @staticmethod
    def fits(*values: str) -> bool:
        """Whether these per-recipient values can go into headers as they are."""
        return all(v.isascii() and "\r" not in v and "\n" not in v for v in values)

    def _now(self) -> str:
        """The Date header's value, formatted once per second."""
        now = clock.now()
        second = (int(now.timestamp()), now.utcoffset())
        if self._date[0] != second:
            self._date = (second, format_datetime(now))
        return self._date[1]

    def message(self, recipient: str, token: str, message_id: str, unsubscribe: str) -> RawMessage:
        """The bytes for ``recipient``; ``message_id`` without the angle brackets."""
        headers = (
            f"To: {recipient}\r\nDate: {self._now()}\r\n"
            f"Message-ID: <{message_id}@{self._domain}>\r\n"
        ).encode("ascii")
        raw_token = token.encode("ascii")
        text, html = (body.encoded(self._placeholder, raw_token) for body in self._bodies)
        data = b"".join(
            (
                self._head, headers, self._list, fold("List-Unsubscribe", f"<{unsubscribe}>"),
                self._mime, self._separator, text, _CRLF, self._separator, html, self._end,
            )
        )  # fmt: skip
        return RawMessage(self.sender, recipient, data)

"""The SMTP backend (aiosmtplib): a small pool of reused connections.

Up to ``smtp.concurrency`` connections are opened lazily and reused for every
message of a batch (one EHLO/STARTTLS/AUTH per connection, not per message).
Each message has a total deadline (``smtp.deadline``). A connection that drops
or times out is closed and reopened for the next message.

Outcomes, per RFC 5321: 2xx sent; 4xx (and timeouts, dropped connections)
transient; 5xx permanent. aiosmtplib raises nothing when only some recipients
are refused, so the per-recipient errors it returns are inspected too.

With a ``RateLimiter`` (``smtp.rate``), each message first reserves its slot in
the deployment's shared rate and waits for it before taking a connection, so no
connection is held while waiting; a 421 or 454 slows the shared rate down.

A ``RawMessage`` (already CRLF wire bytes) goes through ``_transact``, the same
commands and bytes ``SMTP.sendmail`` writes without its per-message work on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from email.message import EmailMessage
from email.utils import parseaddr

import aiosmtplib
from aiosmtplib.email import quote_address
from redis.exceptions import RedisError

from sorawatch.settings import SmtpSettings
from sorawatch.workers import waits
from sorawatch.workers.mail.base import RawMessage, SendResult, recipient_of
from sorawatch.workers.mail.rate import THROTTLE_CODES, RateLimiter

log = logging.getLogger("sorawatch.mail")


def _classify(recipient: str, code: int, text: str) -> SendResult:
    permanent = 500 <= code < 600
    return SendResult(
        recipient, False, code=code, error=f"{code} {text}".strip(), permanent=permanent
    )


class SmtpMailer:
    def __init__(self, settings: SmtpSettings, limiter: RateLimiter | None = None) -> None:
        self.settings = settings
        self.limiter = limiter
        self._idle: asyncio.LifoQueue[aiosmtplib.SMTP] | None = None
        self._slots: asyncio.Semaphore | None = None
        self._all: list[aiosmtplib.SMTP] = []

    def _client(self) -> aiosmtplib.SMTP:
        s = self.settings
        return aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            username=s.username,
            password=s.password,
            use_tls=s.tls,
            # False, not None: None lets aiosmtplib upgrade on its own; we do what the settings say.
            start_tls=bool(s.starttls),
            timeout=s.timeout,
        )

    async def _acquire(self) -> aiosmtplib.SMTP:
        if self._idle is None or self._slots is None:
            self._idle = asyncio.LifoQueue()
            self._slots = asyncio.Semaphore(self.settings.concurrency)
        await self._slots.acquire()
        try:
            client = self._idle.get_nowait()
        except asyncio.QueueEmpty:
            client = self._client()
            self._all.append(client)
        if not client.is_connected:
            try:
                await client.connect()
            except BaseException:
                client.close()
                self._release(client)
                raise
        return client

    def _release(self, client: aiosmtplib.SMTP) -> None:
        assert self._idle is not None
        assert self._slots is not None
        self._idle.put_nowait(client)
        self._slots.release()

    async def send(self, message: EmailMessage | RawMessage) -> SendResult:
        """Send one single-recipient message within the deadline; never raises for
        a refusal, a timeout or a lost connection: those are results. With a rate
        limiter, waits for the message's slot first (outside the deadline); without
        Redis to ask, sends nothing and reports a transient failure."""
        recipient = recipient_of(message)
        if self.limiter is not None:
            try:
                slot = await self.limiter.take()
            except RedisError as exc:
                return SendResult(recipient, False, error=f"mail rate unknown (Redis: {exc})")
            if slot.wait > 0:
                await asyncio.sleep(slot.wait)
                # Expected whenever the rate binds: DEBUG, not a warning per message.
                waits.report("a slot in the mail rate (smtp.rate)", slot.wait, logging.DEBUG)
        try:
            # asyncio.timeout, not wait_for: no extra task per message.
            with waits.waiting(f"SMTP server {self.settings.host}:{self.settings.port}"):
                async with asyncio.timeout(self.settings.deadline):
                    result = await self._send(message, recipient)
        except TimeoutError:
            return SendResult(recipient, False, error=f"no answer within {self.settings.deadline}s")
        if self.limiter is not None and result.code in THROTTLE_CODES:
            try:
                await self.limiter.slow_down(result.code)
            except RedisError as exc:
                log.warning("could not lower the shared mail rate: %s", exc)
        return result

    async def _send(self, message: EmailMessage | RawMessage, recipient: str) -> SendResult:
        client: aiosmtplib.SMTP | None = None
        try:
            client = await self._acquire()
            if isinstance(message, RawMessage):
                # Already flattened (7-bit): no email-package work per message.
                errors = await _transact(client, message)
            else:
                sender = parseaddr(str(message["From"]))[1]
                errors, _reply = await client.send_message(
                    message, sender=sender, recipients=[recipient]
                )
            if recipient in errors:
                code, text = errors[recipient]
                return _classify(recipient, code, text)
            return SendResult(recipient, True, code=250)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients[0] if exc.recipients else None
            if refused is None:
                return SendResult(recipient, False, error=str(exc))
            return _classify(recipient, refused.code, refused.message)
        except aiosmtplib.SMTPNotSupported as exc:
            # This message needs what the server lacks (SMTPUTF8 for this address): a
            # retry cannot help, and it says nothing about the other recipients.
            await self._discard(client)
            client = None
            return SendResult(recipient, False, error=f"not supported: {exc}", permanent=True)
        except aiosmtplib.SMTPAuthenticationError as exc:
            # A settings problem: retrying later may help once someone fixes it.
            await self._discard(client)
            client = None
            return SendResult(recipient, False, error=f"SMTP setup: {exc}")
        except aiosmtplib.SMTPResponseException as exc:
            return _classify(recipient, exc.code, exc.message)
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            await self._discard(client)
            client = None
            return SendResult(recipient, False, error=f"{type(exc).__name__}: {exc}")
        except asyncio.CancelledError:
            await self._discard(client)
            client = None
            raise
        except Exception as exc:
            # Whatever else a strange server makes aiosmtplib raise (a garbled reply):
            # this one message failed for now, the batch goes on, the retry may succeed.
            log.warning("SMTP send to %s failed: %r", recipient, exc)
            await self._discard(client)
            client = None
            return SendResult(recipient, False, error=f"{type(exc).__name__}: {exc}")
        finally:
            if client is not None:
                self._release(client)

    async def _discard(self, client: aiosmtplib.SMTP | None) -> None:
        """Close a connection in an unknown state; the pool opens a new one when needed."""
        if client is None:
            return
        client.close()
        assert self._idle is not None
        assert self._slots is not None
        self._idle.put_nowait(client)
        self._slots.release()

    async def close(self) -> None:
        """QUIT every open connection (and drop the rate limiter's Redis connection)."""
        if self.limiter is not None:
            await self.limiter.close()
        for client in self._all:
            if client.is_connected:
                try:
                    await client.quit()
                except (aiosmtplib.SMTPException, OSError):
                    client.close()
        self._all.clear()
        self._idle = None
        self._slots = None


def _wire_ready(data: bytes) -> bool:
    """Whether ``data`` is already what a DATA command transmits: CRLF line endings
    only, a final CRLF, and no line starting with a dot (nothing to dot-stuff)."""
    crlf = data.count(b"\r\n")
    return (
        data.endswith(b"\r\n")
        and data.count(b"\r") == crlf == data.count(b"\n")
        and not data.startswith(b".")
        and b"\n." not in data
    )


# A dot-atom address (RFC 5322 3.4.1, ASCII), which aiosmtplib's parsing gives back as
# it is; anything else (quotes, comments, a display name) is parsed by aiosmtplib.
_ATEXT = "A-Za-z0-9!#$%&'*+/=?^_`{|}~-"
_DOT_ATOM = re.compile(rf"[{_ATEXT}]+(?:\.[{_ATEXT}]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")


def _quoted(address: str) -> bytes:
    """``<address>`` as aiosmtplib quotes it (ValueError for one that could inject)."""
    if _DOT_ATOM.fullmatch(address):
        return f"<{address}>".encode("ascii")
    return quote_address(address).encode("ascii")


async def _transact(
    client: aiosmtplib.SMTP, message: RawMessage
) -> dict[str, aiosmtplib.SMTPResponse]:
    """Send ``message`` as ``client.sendmail`` does (MAIL with ``size=``, RCPT, DATA,
    the bytes, RSET after a refusal) and return its recipient errors.

    ``sendmail`` parses both addresses twice and runs three regular expressions over
    the whole message (line endings twice, dot-stuffing once): about 150 µs of a
    message's CPU, for bytes our templates already write in wire form. Here each
    address is quoted once, and wire-ready bytes (checked: ``_wire_ready``) are
    written as they are. Anything else, and a connection's first message (which
    says EHLO), goes through ``sendmail`` itself."""
    data = message.data
    if client.is_ehlo_or_helo_needed or not _wire_ready(data):
        errors, _reply = await client.sendmail(message.sender, [message.recipient], data)
        return errors
    sender, recipient = _quoted(message.sender), _quoted(message.recipient)
    size = [b"size=%d" % len(data)] if client.supports_extension("size") else []
    try:
        reply = await client.execute_command(b"MAIL", b"FROM:" + sender, *size)
        if reply.code != 250:
            raise aiosmtplib.SMTPSenderRefused(reply.code, reply.message, message.sender)
        reply = await client.execute_command(b"RCPT", b"TO:" + recipient)
        if reply.code not in (250, 251):
            refused = aiosmtplib.SMTPRecipientRefused(reply.code, reply.message, message.recipient)
            raise aiosmtplib.SMTPRecipientsRefused([refused])
        reply = await client.execute_command(b"DATA")
        if reply.code != 354:
            raise aiosmtplib.SMTPDataError(reply.code, reply.message)
        if client.protocol is None:
            raise aiosmtplib.SMTPServerDisconnected("Connection lost")
        # No await between the write and read_response, which expects the reply.
        client.protocol.write(data + b".\r\n")
        reply = await client.protocol.read_response(timeout=client.timeout)
        if reply.code != 250:
            raise aiosmtplib.SMTPDataError(reply.code, reply.message)
    except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused):
        # Reset the envelope for the connection's next message, as sendmail does.
        with contextlib.suppress(ConnectionError, aiosmtplib.SMTPResponseException):
            await client.rset()
        raise
    return {}

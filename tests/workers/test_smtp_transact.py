"""A connection's later raw messages skip ``SMTP.sendmail`` (``sorawatch.workers.mail.smtp._transact``):
the server must see what ``sendmail`` would send, refusals must read the same, and the
connection must stay usable after one."""

from __future__ import annotations

import asyncio

from aiosmtplib.email import quote_address

from sorawatch.settings import Settings
from sorawatch.testing.smtp import SmtpServer
from sorawatch.workers import mail
from sorawatch.workers.mail.base import RawMessage, SendResult
from sorawatch.workers.mail.smtp import _quoted
from tests.workers.delivery_helpers import with_smtp

SENDER = "alerts@watch.example.test"


def raw(recipient: str, body: bytes = b"hello\r\n") -> RawMessage:
    head = f"From: {SENDER}\r\nTo: {recipient}\r\nSubject: hi\r\n\r\n".encode("ascii")
    return RawMessage(SENDER, recipient, head + body)


def send_all(settings: Settings, messages: list[RawMessage]) -> list[SendResult]:
    """Send one after another on one connection, so all but the first take ``_transact``."""
    mailer = mail.build(settings)

    async def go() -> list[SendResult]:
        try:
            return [await mailer.send(m) for m in messages]
        finally:
            await mailer.close()

    return asyncio.run(go())


def test_later_messages_arrive_byte_for_byte_and_refusals_read_the_same(
    smtp: SmtpServer, settings: Settings
) -> None:
    settings = with_smtp(settings, smtp.port, concurrency=1)
    smtp.refuse("gone@example.test", 550)
    smtp.refuse("busy@example.test", 451)
    messages = [
        raw("first@example.test"),
        raw("gone@example.test"),
        raw("a@example.test"),
        raw("busy@example.test"),
        # A line starting with a dot, a lone LF: sendmail stuffs and normalises these.
        raw("dots@example.test", b".hidden\r\nbare\nline\r\n"),
        raw("b@example.test"),
    ]
    results = send_all(settings, messages)
    assert [(r.recipient, r.ok, r.code, r.permanent) for r in results] == [
        ("first@example.test", True, 250, False),
        ("gone@example.test", False, 550, True),
        ("a@example.test", True, 250, False),
        ("busy@example.test", False, 451, False),
        ("dots@example.test", True, 250, False),
        ("b@example.test", True, 250, False),
    ]
    assert results[1].error == "550 5.1.1 No such user here"
    got = {m.recipients[0]: m for m in smtp.messages}
    assert sorted(got) == [
        "a@example.test",
        "b@example.test",
        "dots@example.test",
        "first@example.test",
    ]
    for message in messages:
        if message.recipient in got:
            assert got[message.recipient].sender == SENDER
    for name in ("first", "a", "b"):
        sent = next(m for m in messages if m.recipient == f"{name}@example.test")
        assert got[sent.recipient].raw == sent.data
    assert got["dots@example.test"].raw.endswith(b".hidden\r\nbare\r\nline\r\n")


def test_an_address_is_quoted_as_sendmail_quotes_it(smtp: SmtpServer, settings: Settings) -> None:
    """What follows the address cannot become an ESMTP parameter of RCPT."""
    settings = with_smtp(settings, smtp.port, concurrency=1)
    results = send_all(settings, [raw("ok@example.test"), raw("x@example.test> NOTIFY=NEVER")])
    assert [r.ok for r in results] == [True, True]
    assert [m.recipients for m in smtp.messages] == [["ok@example.test"], ["x@example.test"]]


def test_addresses_are_quoted_as_aiosmtplib_quotes_them() -> None:
    addresses = [
        "user0000001@example.test",
        "a.b+tag@sub.example.test",
        "o'neil!#$%&*/=?^_`{|}~-@example-test.org",
        '"a b"@example.test',
        "Name <n@example.test>",
        "x@example.test> NOTIFY=NEVER",
        "a..b@example.test",
        ".a@example.test",
    ]
    for address in addresses:
        assert _quoted(address) == quote_address(address).encode("ascii"), address

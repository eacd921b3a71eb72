"""``MailTemplate`` encodes each body's lines before the token once: a recipient's bytes
must be what encoding the whole body with their token gives, wherever the token falls."""

from __future__ import annotations

import base64
from email import message_from_bytes, policy

import pytest

from sorawatch.workers.mail.template import MailTemplate

PLACEHOLDER = "SWUNSUBSCRIBETOKENPLACEHOLDER"


def whole(text: str) -> bytes:
    """A body base64-encoded at once, as the ``email`` package writes it."""
    return base64.encodebytes(text.encode("utf-8")).replace(b"\n", b"\r\n")


@pytest.mark.parametrize("offset", [0, 1, 56, 57, 58, 113, 114, 200])
@pytest.mark.parametrize("token", ["t", "x" * 57, "abc.DEF-ghi_jkl" * 9])
def test_a_recipients_bodies_are_the_whole_bodies_encoded(offset: int, token: str) -> None:
    # Arabic letters are two bytes each: the token's line boundary falls mid-text.
    text = "ا" * (offset // 2) + "a" * (offset % 2) + f"/unsubscribe/{PLACEHOLDER}\nend\n"
    html = f'<p>{"é" * offset}</p><a href="/u/{PLACEHOLDER}">x</a> {PLACEHOLDER}\n'
    template = MailTemplate(
        sender="Sorawatch <alerts@watch.example.test>",
        subject="Sora status: Released",
        text=text,
        html=html,
        placeholder=PLACEHOLDER,
        domain="watch.example.test",
        list_id="Sora alerts <alerts.watch.example.test>",
    )
    raw = template.message("u@example.test", token, "mid", f"https://w.test/u/{token}").data
    for body in (text, html):
        assert whole(body.replace(PLACEHOLDER, token)) in raw
    parsed = message_from_bytes(raw, policy=policy.default)
    got = [p.get_content() for p in parsed.iter_parts()]  # type: ignore[attr-defined]
    assert got == [text.replace(PLACEHOLDER, token), html.replace(PLACEHOLDER, token)]

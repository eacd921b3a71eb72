"""Signed, expiring tokens bound to a purpose (confirm, unsubscribe, preferences).

A token signed for one purpose does not verify for another: the purpose is the
signer's salt. The signing secret is ``web.secret`` or, when unset, one secret
generated once and kept in Redis.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets as _secrets
import time
from datetime import datetime
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from sorawatch.errors import SorawatchError
from sorawatch.keys import Keys
from sorawatch.settings import Settings
from sorawatch.store import text

PURPOSES = {"confirm": 48 * 3600, "unsubscribe": None, "preferences": None}


class TokenError(SorawatchError):
    """A token is forged, expired or for another purpose."""


def signing_secret(settings: Settings, redis: Any, keys: Keys) -> str:
    """``web.secret``, else a random secret generated once and kept in Redis."""
    if settings.web.secret:
        return settings.web.secret
    redis.set(keys.secret, _secrets.token_urlsafe(48), nx=True)
    value: bytes | str = redis.get(keys.secret)
    return text(value)


class Tokens:
    """Sign and verify link tokens.

    The payload is readable by anyone (base64 JSON), so it never holds the address
    as such: ``a`` is the address sealed with a keystream derived from the secret
    (HMAC-SHA256 in counter mode under a random nonce; the signature covers it), and
    ``t`` the signing time in milliseconds. That time is the token's version: a
    subscriber's ``tokens_after`` (``subscriber.tokens_revoked``) turns away every
    token signed before it, so a leaked link can be revoked, and signing a link (once
    per mail sent) needs no Redis read. Tokens of the older ``{"e": address}`` form
    still verify (links already mailed) and count as signed at their timestamp.
    """

    def __init__(self, secret: str) -> None:
        self._secret = secret

    def _serializer(self, purpose: str) -> URLSafeTimedSerializer:
        if purpose not in PURPOSES:
            raise TokenError(f"unknown token purpose {purpose!r}")
        return URLSafeTimedSerializer(self._secret, salt=f"sorawatch.{purpose}")

    def _stream(self, purpose: str, nonce: bytes, size: int) -> bytes:
        key = hashlib.sha256(f"sorawatch.seal|{self._secret}".encode()).digest()
        out = b""
        counter = 0
        while len(out) < size:
            block = purpose.encode() + b"|" + nonce + counter.to_bytes(4, "big")
            out += hmac.new(key, block, hashlib.sha256).digest()
            counter += 1
        return out[:size]

    def sign(self, purpose: str, email: str) -> str:
        data = email.encode("utf-8")
        nonce = _secrets.token_bytes(12)
        sealed = bytes(
            a ^ b for a, b in zip(data, self._stream(purpose, nonce, len(data)), strict=True)
        )
        payload = {
            "a": base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("="),
            "t": _now_ms(),
        }
        return str(self._serializer(purpose).dumps(payload))

    def verify(self, purpose: str, token: str) -> str:
        """The email address the token was signed for; raises TokenError otherwise."""
        return self.verify_signed(purpose, token)[0]

    def verify_signed(self, purpose: str, token: str) -> tuple[str, int]:
        """The address and the signing time (ms since the epoch: the token's version);
        raises TokenError for a forged, expired or other-purpose token."""
        try:
            raw, stamp = self._serializer(purpose).loads(
                token, max_age=PURPOSES[purpose], return_timestamp=True
            )
        except SignatureExpired:
            raise TokenError("this link has expired") from None
        except BadSignature:
            raise TokenError("this link is not valid") from None
        if isinstance(raw, dict) and isinstance(raw.get("e"), str):  # the older form
            return str(raw["e"]), int(stamp.timestamp()) * 1000
        if (
            not isinstance(raw, dict)
            or not isinstance(raw.get("a"), str)
            or not isinstance(raw.get("t"), int)
        ):
            raise TokenError("this link is not valid")
        try:
            blob = base64.urlsafe_b64decode(raw["a"] + "=" * (-len(raw["a"]) % 4))
            nonce, sealed = blob[:12], blob[12:]
            stream = self._stream(purpose, nonce, len(sealed))
            email = bytes(a ^ b for a, b in zip(sealed, stream, strict=True)).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            raise TokenError("this link is not valid") from None
        return email, int(raw["t"])


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def revoked(signed_ms: int, tokens_after: str | None) -> bool:
    """True when a token signed at ``signed_ms`` predates the subscriber's revocation."""
    if not tokens_after:
        return False
    after = datetime.fromisoformat(tokens_after.replace("Z", "+00:00"))
    return signed_ms <= int(after.timestamp() * 1000)

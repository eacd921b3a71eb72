"""Signed, expiring tokens bound to a purpose (confirm, unsubscribe, preferences).

A token signed for one purpose does not verify for another: the purpose is the
signer's salt. The signing secret is ``web.secret`` or, when unset, one secret
generated once and kept in Redis.
"""

from __future__ import annotations

import secrets as _secrets
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from sorawatch.errors import SorawatchError
from sorawatch.keys import Keys
from sorawatch.settings import Settings

PURPOSES = {"confirm": 48 * 3600, "unsubscribe": None, "preferences": None}


class TokenError(SorawatchError):
    """A token is forged, expired or for another purpose."""


def signing_secret(settings: Settings, redis: Any, keys: Keys) -> str:
    """``web.secret``, else a random secret generated once and kept in Redis."""
    if settings.web.secret:
        return settings.web.secret
    redis.set(keys.secret, _secrets.token_urlsafe(48), nx=True)
    value = redis.get(keys.secret)
    return value.decode() if isinstance(value, bytes) else str(value)


class Tokens:
    def __init__(self, secret: str) -> None:
        self._secret = secret

    def _serializer(self, purpose: str) -> URLSafeTimedSerializer:
        if purpose not in PURPOSES:
            raise TokenError(f"unknown token purpose {purpose!r}")
        return URLSafeTimedSerializer(self._secret, salt=f"sorawatch.{purpose}")

    def sign(self, purpose: str, email: str) -> str:
        return str(self._serializer(purpose).dumps({"e": email}))

    def verify(self, purpose: str, token: str) -> str:
        """The email address the token was signed for; raises TokenError otherwise."""
        try:
            raw = self._serializer(purpose).loads(token, max_age=PURPOSES[purpose])
        except SignatureExpired:
            raise TokenError("this link has expired") from None
        except BadSignature:
            raise TokenError("this link is not valid") from None
        if not isinstance(raw, dict) or not isinstance(raw.get("e"), str):
            raise TokenError("this link is not valid")
        return str(raw["e"])

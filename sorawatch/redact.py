"""Credentials out of anything printed or logged: ``redis://:pw@host`` becomes
``redis://:***@host``, and ``/preferences/<token>`` becomes ``/preferences/{token}``."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

# scheme://user:password@ or scheme://password@ (Redis puts the password alone)
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<info>[^/@\s]*)@")
# The signed links of the web pages: a token is a password for one subscriber.
_TOKEN_PATH = re.compile(r"/(?P<purpose>confirm|unsubscribe|preferences)/(?!\{token\})[^/?#\s\"']+")


def redact_url(url: str) -> str:
    """``url`` with the password (and a lone user part, which Redis treats as one) hidden."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    if "@" not in parts.netloc:
        return url
    info, _, host = parts.netloc.rpartition("@")
    user, colon, _password = info.partition(":")
    shown = f"{user}:***" if colon else "***"
    return urlunsplit(parts._replace(netloc=f"{shown}@{host}"))


def redact_text(text: str) -> str:
    """``text`` with the credentials of every ``scheme://user:password@`` and the token
    of every ``/confirm|unsubscribe|preferences/<token>`` path hidden."""

    def hide(match: re.Match[str]) -> str:
        user, colon, _ = match.group("info").partition(":")
        return f"{match.group('scheme')}{user + ':***' if colon else '***'}@"

    return _TOKEN_PATH.sub(r"/\g<purpose>/{token}", _USERINFO.sub(hide, text))

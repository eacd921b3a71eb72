"""Collaborators the routes share, built lazily from ``app.state``."""

from __future__ import annotations

from fastapi import FastAPI

from sorawatch.tokens import Tokens, signing_secret


def tokens(app: FastAPI) -> Tokens:
    """The token signer, built on first use from ``web.secret`` or the secret in Redis.

    Lazy so that a Redis that is down at start does not stop the app from
    answering ``/healthz`` with 503.
    """
    if app.state.tokens_cache is None:
        secret = signing_secret(app.state.settings, app.state.redis, app.state.keys)
        app.state.tokens_cache = Tokens(secret)
    cached: Tokens = app.state.tokens_cache
    return cached

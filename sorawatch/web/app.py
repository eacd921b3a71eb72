"""The app factory: ``create_app(settings, redis=None) -> FastAPI``.

The only place the web builds its collaborators; routes read them from
``request.app.state`` (settings, redis, keys, log, tokens).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from redis import Redis

from sorawatch import __version__, render
from sorawatch.events import EventLog
from sorawatch.keys import Keys
from sorawatch.settings import Settings
from sorawatch.store import connect
from sorawatch.web import admin, atom, errors, ops, pages, subscribe
from sorawatch.web.security import MAX_BODY, SecurityMiddleware

DESCRIPTION = """Sorawatch watches the news for OpenAI's Sora and alerts subscribers and
webhooks when its status, pricing or partnerships change.

The admin API under `/api/` needs `Authorization: Bearer <web.admin_token>`; with no
token configured it answers 404. Errors are JSON: `{"error": "message"}`."""


def create_app(settings: Settings, redis: Redis | None = None) -> FastAPI:
    """Build the web app for ``settings``; connects to Redis itself when none is given.

    Raises SettingsError when no Redis URL is configured and no client is given.
    """
    redis = redis if redis is not None else connect(settings)
    keys = Keys(settings.redis.prefix)
    app = FastAPI(
        title="sorawatch",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,  # the docs UI loads scripts from a CDN, which our CSP forbids
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.redis = redis
    app.state.keys = keys
    app.state.log = EventLog(redis, keys)
    # The secret is read lazily: a Redis that is down at start must not stop the app
    # from answering /healthz with 503.
    app.state.tokens_cache = None
    errors.install(app)
    app.add_middleware(SecurityMiddleware, max_body=MAX_BODY)
    app.mount(
        "/static", StaticFiles(directory=str(render.TEMPLATES_DIR / "web" / "static")), "static"
    )
    for module in (pages, subscribe, atom, ops, admin):
        app.include_router(module.router)
    return app

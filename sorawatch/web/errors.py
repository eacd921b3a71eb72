"""Errors as answers: JSON ``{"error": "..."}`` for the API, a page for people.

Every error status (400, 401, 403, 404, 405, 413, 422, 429, 500) goes through
:func:`error_response`, which picks the form from the path and ``Accept``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

log = logging.getLogger(__name__)

# Short, human messages for statuses raised by the framework itself.
_REASONS = {
    400: "bad request",
    401: "authentication required",
    403: "forbidden",
    404: "not found",
    405: "method not allowed",
    413: "request body too large",
    422: "the request is not valid",
    429: "too many requests",
    500: "internal error",
    503: "service unavailable",
}


class ApiError(HTTPException):
    """An error with a message meant for the caller (``{"error": message}``)."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status, message, headers=dict(headers) if headers else None)


def wants_json(request: Request) -> bool:
    """The API, ops endpoints and clients that do not ask for HTML get JSON."""
    path = request.url.path
    if path.startswith("/api/") or path in ("/api", "/healthz", "/metrics", "/openapi.json"):
        return True
    return "text/html" not in request.headers.get("accept", "")


def error_response(
    request: Request, status: int, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    """The error answer for ``request``: JSON or an error page in the page's language."""
    if wants_json(request):
        return JSONResponse({"error": message}, status_code=status, headers=headers)
    from sorawatch.web.view import error_page

    return error_page(request, status, message, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg")))
    return "; ".join(parts) or _REASONS[422]


def route_template(request: Request) -> str:
    """The matched route's path template (``/preferences/{token}``), or ``(no route)``."""
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "(no route)"


def install(app: FastAPI) -> None:
    """Install the exception handlers that give every error its ``{"error"}`` body."""

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else None
        message = detail or _REASONS.get(exc.status_code, "error")
        if exc.status_code == 404 and detail == "Not Found":
            message = f"nothing here: {request.url.path}"
        elif exc.status_code == 405 and detail == "Method Not Allowed":
            message = f"method {request.method} is not allowed on {request.url.path}"
        return error_response(request, exc.status_code, message, exc.headers)

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return error_response(request, 422, _validation_message(exc))

    async def crashed(request: Request, exc: Exception) -> Response:
        # The route's template (/preferences/{token}), never the path: it holds tokens.
        log.exception("unhandled error on %s %s", request.method, route_template(request))
        return error_response(request, 500, _REASONS[500])

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(Exception, crashed)


def error_model_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting the ``{"error"}`` body."""
    from sorawatch.web.models import ErrorOut

    return {s: {"model": ErrorOut, "description": _REASONS.get(s, "error")} for s in statuses}

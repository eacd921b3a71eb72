"""Subscribe (double opt-in), confirm, unsubscribe (RFC 8058 one-click) and
preferences, behind tokens signed for one purpose each.

The answer to a subscribe request is the same whether or not the address is
known, so the form cannot be used to find out who subscribes. Requests are
rate-limited per client (its /64 for IPv6; a Redis counter that expires), and a
mailbox gets at most one confirmation mail per ``web.confirm_interval``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.background import BackgroundTask
from starlette.datastructures import FormData

from sorawatch import schedule
from sorawatch.commands import subscriptions
from sorawatch.errors import ValidationError
from sorawatch.projections import subscribers
from sorawatch.tokens import TokenError, revoked
from sorawatch.vocabulary import LANGS
from sorawatch.web.deps import tokens
from sorawatch.web.pages import blank_form
from sorawatch.web.ratelimit import RateLimited, hit
from sorawatch.web.security import client_bucket
from sorawatch.web.view import page, page_lang, words

router = APIRouter(include_in_schema=False)

WINDOW = 3600


@router.get("/subscribe", response_class=HTMLResponse)
def subscribe_form(request: Request) -> HTMLResponse:
    """The subscribe form on its own (where the language switch of a result page leads)."""
    lang = page_lang(request)
    return page(request, "subscribe.html", lang, form=blank_form(lang), form_error=None)


@router.post("/subscribe", response_class=HTMLResponse)
async def subscribe(request: Request) -> Response:
    """Ask for alerts: appends ``subscriber.requested`` and queues the confirmation mail.

    400 with the form again for a bad address or choice; 429 over the rate limit.
    """
    lang = page_lang(request)
    form = await request.form()
    values = _form_values(form, with_email=True)
    return await _run(request, lambda: _subscribe(request, lang, values))


def _subscribe(request: Request, lang: str, values: dict[str, Any]) -> Response:
    state = request.app.state
    web = state.settings.web
    limit = web.subscribe_rate
    try:
        hit(state.redis, state.keys, "subscribe-client", client_bucket(request), limit, WINDOW)
    except RateLimited as exc:
        return _too_many(request, lang, exc)
    try:
        email = subscriptions.normalize_email(values["email"])
    except ValidationError:
        return _form_again(request, lang, values, "subscribe.bad_email")
    # No counter per address: a mailbox gets at most one confirmation mail per
    # web.confirm_interval whatever happens (subscriptions.ask), and a counter per
    # made-up address would be one more key per request.
    try:
        asked = subscriptions.ask(
            state.log,
            email,
            values["lang"],
            values["topics"],
            values["kinds"],
            timing=_timing(values),
            pending_ttl=web.pending_ttl,
            confirm_interval=web.confirm_interval,
        )
    except ValidationError:
        return _form_again(request, lang, values, "subscribe.bad_choice")
    response = page(
        request,
        "message.html",
        lang,
        title=words("subscribe.sent_title", lang),
        text=words("subscribe.sent_text", lang, email=email),
    )
    if asked.mail:
        # After the answer is sent: the answer takes as long whether or not a mail is
        # due (a confirmed address, or one mailed in the last day, gets none), so its
        # timing does not tell who subscribes.
        response.background = BackgroundTask(
            subscriptions.queue_confirmation, state.log, email, web.pending_ttl
        )
    return response


@router.get("/confirm/{token}", response_class=HTMLResponse)
def confirm_page(request: Request, token: str) -> Response:
    """A page with the confirm button; a GET never confirms (mail scanners follow links)."""
    found = _subscriber(request, "confirm", token)
    if isinstance(found, Response):
        return found
    email, lang, sub = found
    return page(request, "confirm.html", lang, email=email, done=sub.status == "confirmed")


@router.post("/confirm/{token}", response_class=HTMLResponse)
async def confirm(request: Request, token: str) -> Response:
    """Complete the double opt-in (``subscriber.confirmed``) and say so."""
    await request.form()
    return await _run(request, lambda: _confirm(request, token))


def _confirm(request: Request, token: str) -> Response:
    holder = _holder(request, "confirm", token)
    if isinstance(holder, Response):
        return holder
    email, lang = holder
    sub = subscriptions.confirm(request.app.state.log, email)
    if sub is None:
        return _gone(request, lang)
    return page(
        request,
        "message.html",
        lang,
        title=words("confirm.ok_title", lang),
        text=words("confirm.ok_text", lang, email=sub.email),
        link={
            "href": _link(request, "preferences", sub.email, lang),
            "text": words("preferences.title", lang),
        },
    )


@router.get("/unsubscribe/{token}", response_class=HTMLResponse)
def unsubscribe_page(request: Request, token: str) -> Response:
    """A page with the unsubscribe button; a GET never unsubscribes (mail scanners follow links)."""
    holder = _holder(request, "unsubscribe", token)
    if isinstance(holder, Response):
        return holder
    email, lang = holder
    return page(
        request,
        "unsubscribe.html",
        lang,
        email=email,
        preferences_url=_link(request, "preferences", email, lang),
    )


@router.post("/unsubscribe/{token}", response_class=HTMLResponse)
async def unsubscribe(request: Request, token: str) -> Response:
    """RFC 8058 one-click unsubscribe: no cookie, no login, 200 without a redirect.

    The body (``List-Unsubscribe=One-Click``, urlencoded or multipart) is read but
    not required: the signed token is what authorises it. Appends
    ``subscriber.unsubscribed`` unless already unsubscribed.
    """
    await request.form()
    return await _run(request, lambda: _unsubscribe(request, token))


def _unsubscribe(request: Request, token: str) -> Response:
    holder = _holder(request, "unsubscribe", token)
    if isinstance(holder, Response):
        return holder
    email, lang = holder
    subscriptions.unsubscribe(request.app.state.log, email)
    return page(
        request,
        "message.html",
        lang,
        title=words("unsubscribe.done_title", lang),
        text=words("unsubscribe.done_text", lang, email=email),
    )


@router.get("/preferences/{token}", response_class=HTMLResponse)
def preferences_page(request: Request, token: str) -> Response:
    """The preferences form (language, topics, kinds) behind a preferences token."""
    found = _subscriber(request, "preferences", token)
    if isinstance(found, Response):
        return found
    email, lang, sub = found
    form = _form_of(sub)
    return _preferences(request, lang, email, form, saved=False)


@router.post("/preferences/{token}", response_class=HTMLResponse)
async def save_preferences(request: Request, token: str) -> Response:
    """Save the preferences (``subscriber.updated``); 400 with the form for a bad choice."""
    form = await request.form()
    values = _form_values(form, with_email=False)
    return await _run(request, lambda: _save(request, token, values))


def _save(request: Request, token: str, values: dict[str, Any]) -> Response:
    holder = _holder(request, "preferences", token)
    if isinstance(holder, Response):
        return holder
    email, lang = holder
    try:
        sub = subscriptions.update(
            request.app.state.log,
            email,
            values["lang"],
            values["topics"],
            values["kinds"],
            timing=_timing(values),
        )
    except ValidationError:
        return _preferences(
            request, lang, email, values, saved=False, error="subscribe.bad_choice", status=400
        )
    if sub is None:
        return _gone(request, lang)
    form = _form_of(sub)
    return _preferences(request, lang, email, form, saved=True)


@router.get("/unsubscribe", include_in_schema=False)
def unsubscribe_without_token(request: Request) -> RedirectResponse:
    """Someone trimmed the link: the status page is the best we can offer."""
    return RedirectResponse(f"/?lang={page_lang(request)}", status_code=303)


# -- helpers ----------------------------------------------------------------------


async def _run(request: Request, work: Any) -> Response:
    """Run blocking Redis work off the event loop."""
    from starlette.concurrency import run_in_threadpool

    result: Response = await run_in_threadpool(work)
    return result


def _form_values(form: FormData, *, with_email: bool) -> dict[str, Any]:
    def strings(name: str) -> list[str]:
        return [v for v in form.getlist(name) if isinstance(v, str)][:10]

    chosen_lang = form.get("lang")
    # Values are passed on as given: validation rejects unknown ones with a message.
    values: dict[str, Any] = {
        "lang": chosen_lang if isinstance(chosen_lang, str) else "",
        "topics": tuple(strings("topics")),
        "kinds": tuple(strings("kinds")),
    }
    for name in TIMING:  # an empty or missing field keeps the default (or what was chosen)
        value = form.get(name)
        values[name] = value.strip()[:64] if isinstance(value, str) and value.strip() else None
    if with_email:
        email = form.get("email")
        values["email"] = email[:320] if isinstance(email, str) else ""
    return values


TIMING = ("cadence", "tz", "hour", "max_per_day")


def _timing(values: dict[str, Any]) -> dict[str, Any]:
    """The schedule choices of a form, checked (ValidationError)."""
    return schedule.choose(*(values.get(name) for name in TIMING))


def _form_of(sub: subscribers.Subscriber) -> dict[str, Any]:
    """A subscriber's choices as the preferences form shows them."""
    chosen = sub.to_dict()
    return {name: chosen[name] for name in ("lang", "topics", "kinds", *TIMING)}


def _form_again(request: Request, lang: str, values: dict[str, Any], error: str) -> Response:
    return page(
        request,
        "subscribe.html",
        lang,
        status=400,
        form=values,
        form_error=words(error, lang),
    )


def _preferences(
    request: Request,
    lang: str,
    email: str,
    form: dict[str, Any],
    *,
    saved: bool,
    error: str | None = None,
    status: int = 200,
) -> Response:
    return page(
        request,
        "preferences.html",
        lang,
        status=status,
        email=email,
        form=form,
        saved=saved,
        form_error=words(error, lang) if error else None,
        unsubscribe_url=_link(request, "unsubscribe", email, lang),
    )


def _too_many(request: Request, lang: str, exc: RateLimited) -> Response:
    return page(
        request,
        "error.html",
        lang,
        status=429,
        headers={"Retry-After": str(exc.retry_after)},
        title=words("error.429.title", lang),
        text=words("error.429.text", lang),
        detail=None,
    )


def _lang_for(request: Request, email: str) -> str:
    """``?lang=``, else the subscriber's own language (ar or en), else the browser's."""
    if request.query_params.get("lang") in LANGS:
        return page_lang(request)
    sub = subscribers.get(request.app.state.redis, request.app.state.keys, email)
    if sub is not None and sub.lang in LANGS:
        return sub.lang
    return page_lang(request)


def _holder(request: Request, purpose: str, token: str) -> tuple[str, str] | Response:
    """The address a ``purpose`` token was signed for and the page language for it, or
    the "bad link" page (in the browser's language) when the token does not verify."""
    try:
        email, signed = tokens(request.app).verify_signed(purpose, token)
    except TokenError:
        return _bad_link(request, page_lang(request))
    sub = subscribers.get(request.app.state.redis, request.app.state.keys, email)
    if sub is not None and revoked(signed, sub.tokens_after):
        return _bad_link(request, page_lang(request))
    return email, _lang_for(request, email)


def _subscriber(
    request: Request, purpose: str, token: str
) -> tuple[str, str, subscribers.Subscriber] | Response:
    """As `_holder`, with the subscriber the token speaks for; the "gone" page when
    there is none any more (unknown, expired or unsubscribed)."""
    holder = _holder(request, purpose, token)
    if isinstance(holder, Response):
        return holder
    email, lang = holder
    sub = subscribers.get(request.app.state.redis, request.app.state.keys, email)
    if sub is None or sub.status == "unsubscribed":
        return _gone(request, lang)
    return email, lang, sub


def _link(request: Request, purpose: str, email: str, lang: str) -> str:
    return f"/{purpose}/{tokens(request.app).sign(purpose, email)}?lang={lang}"


def _bad_link(request: Request, lang: str) -> Response:
    return page(
        request,
        "message.html",
        lang,
        status=400,
        title=words("token.bad_title", lang),
        text=words("token.bad_text", lang),
    )


def _gone(request: Request, lang: str) -> Response:
    return page(
        request,
        "message.html",
        lang,
        status=404,
        title=words("confirm.gone_title", lang),
        text=words("confirm.gone_text", lang),
    )

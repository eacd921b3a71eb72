"""Email jobs: alert batches and confirmation mail.

``deliver_email(alert_id, emails, attempt)`` (queue ``email``) renders the alert
once per language preference in the batch, then only substitutes each
recipient's unsubscribe token; sends through the configured mailer (SMTP pool or
outbox folder) with bounded concurrency; marks each message sent in Redis as soon
as the server accepts it, skips what a previous run already sent, and ends the
batch through ``sorawatch.workers.retry.finish`` (events, retries, dead letters).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any
from urllib.parse import urlsplit

from sorawatch import clock, metrics, render, store
from sorawatch.events import EventLog, job_id, queue
from sorawatch.jobs import SEND_CONFIRMATION
from sorawatch.keys import Keys, digest
from sorawatch.projections import ledger, subscribers
from sorawatch.settings import Settings
from sorawatch.tokens import Tokens, signing_secret
from sorawatch.workers import digest as digests
from sorawatch.workers import mail, runtime
from sorawatch.workers.channels.email import CHANNEL as EMAIL
from sorawatch.workers.mail import headers
from sorawatch.workers.mail.base import Mailer, RawMessage, SendResult
from sorawatch.workers.mail.template import MailTemplate
from sorawatch.workers.marks import SentMarks
from sorawatch.workers.retry import Outcome, finish

# Letters only, so HTML escaping leaves it intact and it cannot occur in a template.
TOKEN_PLACEHOLDER = "SWUNSUBSCRIBETOKENPLACEHOLDER"  # noqa: S105 (a marker, not a secret)
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")
_SPACES = re.compile(r" {2,}")


@dataclass(frozen=True, slots=True)
class Rendered:
    """An alert rendered for one language preference, with a token placeholder."""

    subject: str
    text: str
    html: str


def header_text(value: str, limit: int = 300) -> str:
    """A header-safe line: CR, LF and other control characters become one space,
    so a feed title can never inject a header; runs of spaces become one."""
    return _SPACES.sub(" ", _CONTROL.sub(" ", value)).strip()[:limit]


def subject_for(alert: Mapping[str, Any], pref: str) -> str:
    """The subject in the subscriber's language (both, joined, for ``both``); a news
    subject names its topic, since one item can be news on two topics. An Arabic part
    is one isolated right-to-left block (``render.line``), so a left-to-right mail
    client keeps "(Sora 2)" at its end."""
    parts = []
    for lang in render.languages(pref):
        line = render.headline(alert, lang)
        if alert.get("kind") == "news":
            topic = render.topic_label(alert.get("topic"), lang)
            line = render.phrase("subject.news", lang, topic=topic, title=line)
        parts.append(render.line(line, lang))
    return " | ".join(parts)


def render_alert(alert: Mapping[str, Any], pref: str, public_url: str) -> Rendered:
    """Render subject, text and HTML once for a language preference."""
    context = {
        "alert": alert,
        "langs": render.languages(pref),
        "public_url": public_url,
        "unsubscribe_url": unsubscribe_url(public_url, TOKEN_PLACEHOLDER),
    }
    return Rendered(
        subject=subject_for(alert, pref),
        text=render.render("email/alert.txt.j2", **context),
        html=render.render("email/alert.html.j2", **context),
    )


def unsubscribe_url(public_url: str, token: str) -> str:
    return f"{public_url}/unsubscribe/{token}"


def _domain(settings: Settings) -> str:
    sender = parseaddr(settings.smtp.from_)[1]
    if "@" in sender:
        return sender.rsplit("@", 1)[1]
    return urlsplit(settings.web.public_url).hostname or "localhost"


def compose(
    *,
    settings: Settings,
    recipient: str,
    subject: str,
    text: str,
    html: str,
    message_key: str,
    unsubscribe: str | None = None,
) -> EmailMessage:
    """A ``multipart/alternative`` message (text first, HTML last) with Message-ID,
    Date, List-Id and, for list mail, RFC 8058 one-click unsubscribe headers.

    The Message-ID derives from ``message_key``, so a retried message keeps it.
    """
    msg = EmailMessage()  # default policy: RFC 2047 for non-ASCII headers
    msg["From"] = settings.smtp.from_
    msg["To"] = recipient
    # Folded by hand (see sorawatch.workers.mail.headers): the email package's folder can start
    # a long subject on a continuation line, and readers then see a leading space.
    folded = headers.fold("Subject", header_text(subject)).decode("ascii")
    msg.set_raw("Subject", folded.removeprefix("Subject: ").removesuffix("\r\n"))
    msg["Date"] = format_datetime(clock.now())
    msg["Message-ID"] = f"<{digest(message_key, 32)}@{_domain(settings)}>"
    host = urlsplit(settings.web.public_url).hostname or "localhost"
    msg["List-Id"] = f"Sora alerts <alerts.{host}>"
    if unsubscribe:
        msg["List-Unsubscribe"] = f"<{unsubscribe}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg


async def send_batch(
    log: EventLog,
    settings: Settings,
    mailer: Mailer,
    alert_id: str,
    emails: Sequence[str],
    attempt: int = 0,
    tag: str = "",
) -> dict[str, int]:
    """Send one alert to a batch of subscribers; returns counts sent/retry/abandoned.

    Raises EventError when the alert is unknown. Writes sent marks, delivery
    events, the ledger and (for transient failures) the retry job.
    """
    redis, keys = log.redis, log.keys
    opening = EMAIL.start(log, alert_id, emails, attempt, tag)
    alert, batch, emails, done = opening.alert, opening.batch, opening.recipients, opening.done
    outcomes = [Outcome(e, True, extra={"recovered": True}) for e in opening.recovered]
    tokens = Tokens(signing_secret(settings, redis, keys))
    public_url = settings.web.public_url
    templates: dict[str, MailTemplate] = {}
    jobs: list[tuple[str, EmailMessage | RawMessage]] = []
    todo = [e for e in emails if e not in done]
    # Unsubscribed since the fan-out, or switched to a digest: send nothing, record nothing.
    found = subscribers.get_many(redis, keys, todo).items()
    now = [
        s for _, s in found if s is not None and s.status == "confirmed" and s.cadence == "instant"
    ]
    held = digests.hold_over_cap(redis, keys, alert, now)  # told in their next digest
    for sub in now:
        if sub.email in held:
            continue
        if sub.lang not in templates:
            templates[sub.lang] = _template(settings, render_alert(alert, sub.lang, public_url))
        message = _message(settings, templates[sub.lang], tokens, alert_id, sub.email)
        jobs.append((sub.email, message))
    outcomes += await send_all(settings, mailer, keys, alert_id, jobs)
    return finish(log, batch, emails, outcomes, EMAIL.schedule(settings), settings)


async def send_all(
    settings: Settings,
    mailer: Mailer,
    keys: Keys,
    delivery_id: str,
    jobs: Sequence[tuple[str, EmailMessage | RawMessage]],
    sent: Callable[[str], None] | None = None,
) -> list[Outcome]:
    """Send ``(recipient, message)`` jobs, marking each accepted one sent at once
    (and calling ``sent`` with it once its mark is written); closes the mailer.
    Returns the outcomes.

    ``smtp.concurrency`` lanes, each sending one message after another on its own
    connection (no task or semaphore hand-off per message). A lane sends its next
    message while the previous one's mark is written, and waits for that mark before
    a third: sent-but-unmarked (what a SIGKILL would send twice) stays at most two
    messages per lane."""
    marks = SentMarks(store.connect_async(settings), keys, delivery_id, "email")
    waiting = list(reversed(jobs))

    async def lane() -> list[Outcome]:
        done: list[Outcome] = []
        marking: tuple[str, asyncio.Future[None]] | None = None

        async def marked() -> None:
            # ``sent`` runs once the mark is in Redis: a kill before that re-sends (the
            # in-flight bound), a kill after it finds the recipient done.
            if marking is not None:
                await marking[1]
                if sent is not None:
                    sent(marking[0])

        while waiting:
            email, message = waiting.pop()
            result = await mailer.send(message)
            await marked()
            marking = (email, marks.add(email)) if result.ok else None
            done.append(_outcome(result))
        await marked()
        return done

    outcomes: list[Outcome] = []
    try:
        lanes = min(settings.smtp.concurrency, len(jobs))
        for told in await asyncio.gather(*(lane() for _ in range(lanes))):
            outcomes += told
    finally:
        try:
            await mailer.close()
        finally:
            await marks.client.aclose()
    return outcomes


def _template(settings: Settings, page: Rendered) -> MailTemplate:
    host = urlsplit(settings.web.public_url).hostname or "localhost"
    return MailTemplate(
        sender=settings.smtp.from_,
        subject=header_text(page.subject),
        text=page.text,
        html=page.html,
        placeholder=TOKEN_PLACEHOLDER,
        domain=_domain(settings),
        list_id=f"Sora alerts <alerts.{host}>",
    )


def _message(
    settings: Settings, template: MailTemplate, tokens: Tokens, alert_id: str, email: str
) -> EmailMessage | RawMessage:
    """One subscriber's mail: from the template when its values fit a header as they
    are (ASCII), else composed by the ``email`` package (which encodes them)."""
    token = tokens.sign("unsubscribe", email)
    public_url = settings.web.public_url
    unsubscribe = unsubscribe_url(public_url, token)
    key = f"{alert_id}\x1f{email}"
    if MailTemplate.fits(email, unsubscribe):
        return template.message(email, token, digest(key, 32), unsubscribe)
    return compose(
        settings=settings,
        recipient=email,
        subject=template.subject,
        text=template.text.replace(TOKEN_PLACEHOLDER, token),
        html=template.html.replace(TOKEN_PLACEHOLDER, token),
        message_key=key,
        unsubscribe=unsubscribe,
    )


def _outcome(result: SendResult) -> Outcome:
    extra: dict[str, Any] = {"code": result.code} if result.code else {}
    return Outcome(
        result.recipient, result.ok, error=result.error, permanent=result.permanent, extra=extra
    )


def _mailer(rt: runtime.Runtime) -> Mailer:
    given = rt.extras.get("mailer")
    return given if given is not None else mail.build(rt.settings)


def deliver_email(
    alert_id: str, emails: list[str], attempt: int = 0, tag: str = ""
) -> dict[str, int]:
    """RQ job (queue ``email``): send ``alert_id`` (an alert, or a digest: see
    ``sorawatch.workers.digest``) to ``emails``; see ``send_batch`` and ``send_digests``."""
    rt = runtime.current()
    send = send_digests if digests.is_digest(alert_id) else send_batch
    return asyncio.run(send(rt.log, rt.settings, _mailer(rt), alert_id, emails, attempt, tag))


async def send_digests(
    log: EventLog,
    settings: Settings,
    mailer: Mailer,
    digest_id: str,
    emails: Sequence[str],
    attempt: int = 0,
    tag: str = "",
) -> dict[str, int]:
    """Send the digests ending at ``digest_id``'s boundary to a batch of subscribers
    (each their own: their period, topics, language); returns counts like
    ``send_batch``. A subscriber with nothing to tell gets nothing, and their period
    is done. Raises ValueError for an id that is not a digest's."""
    redis, keys = log.redis, log.keys
    end = digests.end_of(digest_id)
    batch = EMAIL.open(digest_id, attempt, tag)
    emails = list(dict.fromkeys(emails))
    done = ledger.already_sent(redis, keys, digest_id, "email", emails)
    recovered = [e for e in done if ledger.record(redis, keys, digest_id, "email", e) is None]
    outcomes = [Outcome(email, True, extra={"recovered": True}) for email in recovered]
    for sub in subscribers.get_many(redis, keys, recovered).values():
        if sub is not None:  # sent by a run that died before it could say so
            digests.done(redis, keys, digests.gather(redis, keys, sub, end))
    tokens = Tokens(signing_secret(settings, redis, keys))
    public_url = settings.web.public_url
    jobs: list[tuple[str, EmailMessage | RawMessage]] = []
    told: dict[str, digests.Contents] = {}
    todo = [e for e in emails if e not in done]
    for email, sub in subscribers.get_many(redis, keys, todo).items():
        if sub is None or sub.status != "confirmed":
            continue
        contents = digests.gather(redis, keys, sub, end)
        if not contents.alerts:
            digests.done(redis, keys, contents)
            continue
        told[email] = contents
        langs = render.languages(sub.lang)
        subject = digests.subject(contents, langs)
        page = {
            **digests.context(contents, langs, public_url),
            "subject": subject,
            "unsubscribe_url": unsubscribe_url(public_url, TOKEN_PLACEHOLDER),
        }
        template = _template(
            settings,
            Rendered(
                subject=subject,
                text=render.render("email/digest.txt.j2", **page),
                html=render.render("email/digest.html.j2", **page),
            ),
        )
        jobs.append((email, _message(settings, template, tokens, digest_id, email)))

    def sent(email: str) -> None:
        digests.done(redis, keys, told[email])

    outcomes += await send_all(settings, mailer, keys, digest_id, jobs, sent)
    return finish(log, batch, emails, outcomes, EMAIL.schedule(settings), settings)


# -- confirmation mail -----------------------------------------------------------------


def confirm_url(settings: Settings, tokens: Tokens, email: str) -> str:
    return f"{settings.web.public_url}/confirm/{tokens.sign('confirm', email)}"


async def send_confirmation_mail(
    log: EventLog, settings: Settings, mailer: Mailer, email: str
) -> SendResult | None:
    """Send the double opt-in mail to a pending subscriber (None: nothing to send).

    The mail is in the subscriber's language(s) and links to
    ``{public_url}/confirm/{token}`` (a signed token valid 48 hours).
    """
    redis, keys = log.redis, log.keys
    sub = subscribers.get(redis, keys, email)
    if sub is None or sub.status != "pending":
        return None
    tokens = Tokens(signing_secret(settings, redis, keys))
    langs = render.languages(sub.lang)
    context = {
        "langs": langs,
        "public_url": settings.web.public_url,
        "confirm_url": confirm_url(settings, tokens, sub.email),
    }
    message = compose(
        settings=settings,
        recipient=sub.email,
        subject=" | ".join(render.phrase("subject.confirm", lang) for lang in langs),
        text=render.render("email/confirm.txt.j2", **context),
        html=render.render("email/confirm.html.j2", **context),
        message_key=f"confirm\x1f{sub.email}\x1f{sub.requested_at}",
    )
    try:
        return await mailer.send(message)
    finally:
        await mailer.close()


def send_confirmation(email: str, attempt: int = 0) -> str:
    """RQ job (queue ``email``): the confirmation mail; a transient failure is retried
    on ``workers.retry_schedule``. Returns what happened (for the job's result)."""
    rt = runtime.current()
    result = asyncio.run(send_confirmation_mail(rt.log, rt.settings, _mailer(rt), email))
    if result is None:
        return "skipped"
    if result.ok:
        return "sent"
    schedule = rt.settings.workers.retry_schedule
    if result.permanent or attempt + 1 >= len(schedule):
        metrics.incr(rt.redis, rt.keys, "confirmations_failed")
        return f"failed: {result.error}"
    q = queue("email", rt.redis, rt.keys)
    options: dict[str, Any] = {"job_id": job_id("confirm", digest(email), f"a{attempt + 1}")}
    delay = float(schedule[attempt + 1])
    if delay <= 0:
        q.enqueue_call(SEND_CONFIRMATION, args=(email, attempt + 1), **options)
    else:
        q.enqueue_in(
            timedelta(seconds=delay),
            SEND_CONFIRMATION,
            email,
            attempt + 1,
            **options,
        )
    return f"retrying: {result.error}"

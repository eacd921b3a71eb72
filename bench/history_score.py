"""What `history.py` measures: which corpus item each delivery and each state change is
about, the figures, and the final state against the truth.

Two functions hold what depends on the alert and state models, so they are the only
places to adapt when those change: ``attribute`` (a delivery → the corpus item it is
about) and ``compare_state`` (``sorawatch state --json`` → what differs from the truth).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

from history_world import (
    CADENCED,
    CAP,
    CAPPED,
    EN,
    HOOK,
    RECIPIENTS,
    SUBSCRIBERS,
    Corpus,
    Event,
    Item,
    normal_link,
)

from sorawatch.testing.smtp import Received

URL = re.compile(r"https?://[^\s<>\"')\]]+")
MAILBOX = {address: label for label, address, *_ in (*SUBSCRIBERS, *CADENCED)}
CADENCE_LABELS = tuple(label for label, *_ in CADENCED)


@dataclass(frozen=True)
class Delivery:
    """One message a recipient received: a mail or a webhook request."""

    recipient: str  # en, ar, status, webhook
    subject: str  # mail subject, or the webhook's type
    links: tuple[str, ...]  # the links it carries, in order (sources first in our templates)
    alert_id: str | None = None
    verified: bool = True  # a webhook whose signature verifies
    sent: datetime | None = None  # a mail's Date (the clock of the step that sent it)


def mail_delivery(received: Received) -> list[Delivery]:
    """One delivery per subscriber the message was addressed to."""
    msg = received.message
    body = msg.get_body(("plain",))
    text = str(body.get_content()) if body is not None else ""
    links = tuple(URL.findall(text))
    return [
        Delivery(
            MAILBOX.get(rcpt.lower(), rcpt.lower()),
            str(msg["Subject"]),
            links,
            sent=parsedate_to_datetime(str(msg["Date"])),
        )
        for rcpt in received.recipients
    ]


def webhook_delivery(body: bytes, headers: Mapping[str, str], secret: str) -> Delivery:
    from standardwebhooks import Webhook, WebhookVerificationError

    try:
        Webhook(secret).verify(body.decode("utf-8"), dict(headers))
        verified = True
    except WebhookVerificationError:
        verified = False
    payload = json.loads(body)
    data = payload.get("data") or {}
    links = tuple(str(s.get("url")) for s in data.get("sources") or [] if s.get("url"))
    return Delivery(HOOK, str(payload.get("type")), links, data.get("alert_id"), verified)


def attribute(
    delivery: Delivery, corpus: Corpus, alerts: Mapping[str, dict[str, Any]]
) -> Item | None:
    """The corpus item a delivery is about: the first of its links that is an item's link
    (an alert lists the report that raised it first), else the first source of its alert
    (found by id in the log's ``alert.raised`` events). None when neither names an item."""
    links = list(delivery.links)
    alert = alerts.get(delivery.alert_id or "")
    if alert is not None:
        links += [str(s.get("url")) for s in alert.get("sources") or [] if s.get("url")]
    for link in links:
        item = corpus.by_link.get(normal_link(link))
        if item is not None:
            return item
    return None


def cause(change: dict[str, Any], item_urls: Mapping[str, str], corpus: Corpus) -> Item | None:
    """The corpus item a ``state.changed`` event came from (its item event, or evidence)."""
    data = change.get("data") or {}
    urls = [item_urls.get(str(data.get("item_event")))]
    evidence = data.get("evidence")
    for ev in evidence if isinstance(evidence, list) else [evidence]:
        if isinstance(ev, dict):
            urls.append(ev.get("url"))
    for url in urls:
        if url and (item := corpus.by_link.get(normal_link(url))) is not None:
            return item
    return None


# -- the state against the truth ----------------------------------------------------------


def _norm(label: Any) -> str:
    return re.sub(r"[^0-9a-z\u0600-\u06ff]+", "", str(label).lower())


def _version(label: Any) -> str:
    """``Sora``, ``Sora 1`` and ``Sora Turbo`` are one line; ``Sora 2`` (and ``Sora 2 Pro``) another."""
    text = _norm(label).removeprefix("sora").removesuffix("pro")
    return "2" if text.startswith("2") else "1"


def _ended(entry: Any) -> bool:
    if isinstance(entry, str):
        return entry.lower() in ("ended", "withdrawn", "discontinued")
    if isinstance(entry, dict):
        status = str(entry.get("status") or entry.get("state") or "").lower()
        return bool(entry.get("until")) or status in ("ended", "withdrawn")
    return False


def _entries(value: Any, label_keys: Sequence[str]) -> list[tuple[str, Any]]:
    """(label, entry) pairs from a list of entries or a mapping label → entry."""
    if isinstance(value, dict):
        return [(str(k), v) for k, v in value.items()]
    out = []
    for entry in value or []:
        if isinstance(entry, dict):
            label = next((entry[k] for k in label_keys if entry.get(k)), None)
            if label is not None:
                out.append((str(label), entry))
    return out


def _status_lines(status: Any) -> dict[str, str]:
    """Version line → status value, from today's single status or a per-version map."""
    if not status:
        return {}
    if isinstance(status, dict) and "value" in status:  # one headline status
        return {_version(status.get("version") or "Sora"): str(status["value"])}
    if isinstance(status, list):  # line entries: {"value", "version", ...}
        return {_version(e.get("version") or e.get("line") or "Sora"): str(e.get("value"))
                for e in status if isinstance(e, dict)}  # fmt: skip
    lines = {}
    for label, entry in _entries(status, ("version", "line", "name")):
        value = entry if isinstance(entry, str) else (entry or {}).get("value")
        lines[_version(label)] = str(value)
    return lines


def compare_state(state: dict[str, Any], truth: dict[str, Any]) -> list[str]:
    """What ``sorawatch state --json`` gets wrong against an event's ``truth``; empty when
    it matches. Reads today's shape (one status; ``pricing`` and ``partners`` lists) and
    the coming one (a headline status and ``versions``, one entry per line; ended plans
    and partners with ``until``, in the lists or apart under ``ended``)."""
    wrong: list[str] = []
    truth_status = {_version(k): v for k, v in (truth.get("status") or {}).items()}
    per_line = state.get("versions")
    got = _status_lines(per_line or state.get("status"))
    if not per_line and isinstance(state.get("status"), dict) and "value" in state["status"]:
        # One status only: it is right when it is the newest version's.
        newest = list((truth.get("status") or {}).items())[-1:] or [("Sora", None)]
        want, have = newest[0][1], next(iter(got.values()), None)
        if have != want:
            wrong.append(f"status: {have} (truth: {newest[0][0]} {want})")
    else:
        for line, want in truth_status.items():
            if got.get(line) != want:
                wrong.append(f"status of line {line}: {got.get(line)} (truth: {want})")
    ended: dict[str, Any] = state["ended"] if isinstance(state.get("ended"), dict) else {}
    plans = _entries(state.get("plans", state.get("pricing")), ("plan", "name", "label"))
    plans += _entries(ended.get("plans", ended.get("pricing")), ("plan", "name", "label"))
    active_plans = {_norm(k): (k, e) for k, e in plans if not _ended(e)}
    truth_plans = {_norm(k): (k, v) for k, v in (truth.get("plans") or {}).items()}
    for key, (label, want) in truth_plans.items():
        if key not in active_plans:
            wrong.append(f"plan {label}: missing (truth: on offer)")
            continue
        entry = active_plans[key][1]
        amount = entry.get("amount") if isinstance(entry, dict) else None
        ok = [float(a) for a in want.get("amount") or []]
        if amount is not None and ok and all(abs(float(amount) - a) > 1e-9 for a in ok):
            wrong.append(
                f"plan {label}: {float(amount):g} (truth: {'/'.join(f'{a:g}' for a in ok)})"
            )
    for key, (label, _entry) in active_plans.items():
        if key not in truth_plans:
            wrong.append(f"plan {label}: on offer (truth: not)")
    partners = _entries(state.get("partners"), ("name", "partner"))
    partners += _entries(ended.get("partners"), ("name", "partner"))
    shown: dict[str, tuple[str, bool]] = {}  # partner → (label, ended); active wins
    for k, e in partners:
        shown[_norm(k)] = (k, _ended(e) and shown.get(_norm(k), (k, True))[1])
    truth_partners = {_norm(k): (k, v) for k, v in (truth.get("partners") or {}).items()}
    for key, (label, want) in truth_partners.items():
        if key not in shown:
            wrong.append(f"partner {label}: missing (truth: {want})")
        elif shown[key][1] != (want == "ended"):
            have = "ended" if shown[key][1] else "active"
            wrong.append(f"partner {label}: {have} (truth: {want})")
    for key, (label, gone) in shown.items():
        if key not in truth_partners and not gone:
            wrong.append(f"partner {label}: active (truth: never a partner)")
    return wrong


# -- the figures ----------------------------------------------------------------------------


@dataclass
class Score:
    corpus: Corpus
    per_event: dict[str, Counter[str]] = field(default_factory=dict)  # event → recipient → n
    per_noise: dict[str, Counter[str]] = field(default_factory=dict)  # item → recipient → n
    changes: dict[str, list[str]] = field(default_factory=dict)  # event → status values
    false_changes: list[dict[str, Any]] = field(default_factory=list)
    status_changes: int = 0
    unattributed: list[dict[str, Any]] = field(default_factory=list)
    mails: Counter[str] = field(default_factory=Counter)
    alerts: int = 0
    unverified_webhooks: int = 0
    fingerprint: list[str] = field(default_factory=list)
    # Mails to subscribers on a cadence: recipient → [(sent, subject, events told)].
    cadenced: dict[str, list[tuple[datetime, str, set[str]]]] = field(default_factory=dict)


def score(corpus: Corpus, deliveries: Iterable[Delivery], log: Sequence[dict[str, Any]]) -> Score:
    """Attribute every delivery and every status change, and count."""
    out = Score(corpus)
    alerts = {
        str(e["data"].get("alert_id")): e["data"] for e in log if e.get("type") == "alert.raised"
    }
    out.alerts = len(alerts)
    for delivery in deliveries:
        if delivery.recipient in CADENCE_LABELS:
            told = {i.event for i in _items(delivery.links, corpus) if i.event}
            assert delivery.sent is not None
            entry = (delivery.sent, delivery.subject, told)
            out.cadenced.setdefault(delivery.recipient, []).append(entry)
            out.fingerprint.append(f"{delivery.recipient}|{sorted(told)}|{delivery.subject}")
            continue
        out.mails[delivery.recipient] += 1
        out.unverified_webhooks += not delivery.verified
        item = attribute(delivery, corpus, alerts)
        out.fingerprint.append(
            f"{delivery.recipient}|{item.id if item else '?'}|{delivery.subject}"
        )
        if item is None:
            out.unattributed.append({"recipient": delivery.recipient, "subject": delivery.subject})
        elif item.event is None:
            out.per_noise.setdefault(item.id, Counter())[delivery.recipient] += 1
        else:
            out.per_event.setdefault(item.event, Counter())[delivery.recipient] += 1
    item_urls = {
        str(e["id"]): str(e["data"].get("url"))
        for e in log
        if e.get("type") in ("item.seen", "item.revised")
    }
    for change in log:
        data = change.get("data") or {}
        if change.get("type") != "state.changed" or data.get("topic") != "status":
            continue
        out.status_changes += 1
        after = data.get("after") or {}
        value = str(after.get("value") if isinstance(after, dict) else after)
        item = cause(change, item_urls, corpus)
        event = corpus.event(item.event) if item is not None else None
        out.fingerprint.append(f"state|{item.id if item else '?'}|{value}")
        if event is not None:
            out.changes.setdefault(event.id, []).append(value)
        reason = _false(value, item, event)
        if reason:
            out.false_changes.append({"item": item.id if item else None, "event": event.id if event else None,
                                      "value": value, "why": reason})  # fmt: skip
    return out


def _items(links: Iterable[str], corpus: Corpus) -> list[Item]:
    found = (corpus.by_link.get(normal_link(link)) for link in links)
    return [i for i in found if i is not None]


def cadence_figures(s: Score, reaching: set[str]) -> dict[str, Any]:
    """Per subscriber on a cadence: mails, the most in one day (or week), and the events
    that reached the English subscriber but not them (a digest must tell every one)."""
    out: dict[str, Any] = {}
    for label in CADENCE_LABELS:
        mails = s.cadenced.get(label, [])
        told = set().union(*(t for _, _, t in mails)) if mails else set()
        catch_up = [m for m in mails if " more update" in m[1]]
        alerts = [m for m in mails if m not in catch_up]
        per_day = Counter(sent.date() for sent, _, _ in (alerts if label == CAPPED else mails))
        per_week = Counter(sent.isocalendar()[:2] for sent, _, _ in mails)
        out[label] = {
            "mails": len(mails),
            "most_in_a_day": max(per_day.values(), default=0),
            "most_in_a_week": max(per_week.values(), default=0),
            "missing": sorted(reaching - told),
            **({"cap": CAP, "catch_ups": len(catch_up)} if label == CAPPED else {}),
        }
    return out


def _false(value: str, item: Item | None, event: Event | None) -> str | None:
    """Why a status change did not happen; None when it did."""
    if item is None:
        return "not from a corpus item"
    if event is None:
        return f"from a {item.kind or 'no-change'} item that changes nothing"
    if value not in event.status_ok:
        ok = "/".join(event.status_ok) or "no status change"
        return f"{event.id} is {ok}"
    return None


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def figures(s: Score, state: dict[str, Any]) -> dict[str, Any]:
    """The figures as one JSON-able dict (None, never NaN, where a ratio has no base)."""
    events = s.corpus.events
    reaching_en = [e.id for e in events if s.per_event.get(e.id, Counter())[EN]]
    alerted = [e.id for e in events if sum(s.per_event.get(e.id, Counter()).values())]
    en_event_mails = sum(c[EN] for c in s.per_event.values())
    noise = Counter[str]()
    for c in s.per_noise.values():
        noise.update(c)
    truth = s.corpus.truth
    mismatches = compare_state(state, truth) if truth is not None else ["no truth: no events"]
    return {
        "events": len(events),
        "events_alerted": len(alerted),
        "events_reaching_en": len(reaching_en),
        "recall_en": ratio(len(reaching_en), len(events)),
        "missed_en": [e.id for e in events if e.id not in reaching_en],
        "alerts": s.alerts,
        "deliveries": {r: s.mails[r] for r in RECIPIENTS},
        "mails_per_event_en": ratio(en_event_mails, len(reaching_en)),
        "en_mails_per_event_total": ratio(s.mails[EN], len(events)),
        "noise_deliveries": {r: noise[r] for r in RECIPIENTS},
        "noise_mails": sum(noise[r] for r in RECIPIENTS if r != HOOK),
        "noise_items_alerted": len(s.per_noise),
        "status_changes": s.status_changes,
        "false_status_changes": len(s.false_changes),
        "false_status_detail": s.false_changes,
        "unattributed": len(s.unattributed),
        "unverified_webhooks": s.unverified_webhooks,
        "truth_after": events[-1].id if events else None,
        "state_matches": not mismatches,
        "state_mismatches": mismatches,
        "cadenced": cadence_figures(s, set(reaching_en)),
        "fingerprint": hashlib.sha256("\n".join(sorted(s.fingerprint)).encode()).hexdigest()[:16],
    }

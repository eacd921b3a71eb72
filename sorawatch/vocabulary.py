"""The words sorawatch speaks in, each defined once: topics, languages, kinds of alert,
status values, subscriber statuses and cadences.

Code, templates (as Jinja globals), the web API's types and the lexicon's checks all
read them from here. The delivery channels and their queues are named with the jobs,
in ``sorawatch.jobs``.
"""

from __future__ import annotations

from typing import Literal

# What changes about the product: its release status, its prices, its partners.
Topic = Literal["status", "pricing", "partnership"]
TOPICS: tuple[Topic, ...] = ("status", "pricing", "partnership")

# The languages we write in, in the order a `both` reader gets them (Arabic first).
LANGS = ("ar", "en")
Lang = Literal["ar", "en"]
# What a subscriber or an endpoint chooses: one language or both.
LANG_CHOICES = ("ar", "en", "both")
LangChoice = Literal["ar", "en", "both"]

# Kinds of alert a subscription asks for: confirmed changes, news, early (unconfirmed)
# reports. Early reports are opt-in, so a subscription without kinds gets the default.
Kind = Literal["change", "news", "early"]
KINDS: tuple[Kind, ...] = ("change", "news", "early")
DEFAULT_KINDS: tuple[Kind, ...] = ("change", "news")

# The status values the lexicon can assert, from the first word to the last.
STATUSES = (
    "announced",
    "research_preview",
    "limited_access",
    "delayed",
    "released",
    "new_version",
    "expanded",
    "paused",
    "discontinued",
)

SUBSCRIBER_STATUSES = ("pending", "confirmed", "unsubscribed")
SubscriberStatus = Literal["pending", "confirmed", "unsubscribed"]

# How often a subscriber hears: each alert as it comes, or one digest a day or a week.
CADENCES = ("instant", "daily", "weekly")
Cadence = Literal["instant", "daily", "weekly"]

"""`sorawatch classify`: JSON lines in, one verdict per line out (for people and scripts)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from sorawatch.vocabulary import LANGS


@click.command("classify")
@click.option(
    "--lexicon",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Lexicon TOML to classify with. Default: the shipped Sora lexicon.",
)
def classify_command(lexicon: Path | None) -> None:
    """Classify news items read as JSON lines on stdin.

    Each line is {"title": ..., "summary": ..., "lang": "ar"|"en"|null}; each gets one
    line {"relevant", "topics", "facts"} on stdout, in order. A bad line gets
    {"error": "line N: ..."} and the rest go on; blank lines are skipped.
    """
    # Imported here so other commands never pay for compiling the lexicon.
    from sorawatch.errors import LexiconError
    from sorawatch.watcher.classify import Classifier, default_classifier, load_lexicon

    try:
        classifier = Classifier(load_lexicon(lexicon)) if lexicon else default_classifier()
    except LexiconError as exc:
        raise click.ClickException(str(exc)) from None
    for number, line in enumerate(_lines(), start=1):
        if not line.strip():
            continue
        try:
            title, summary, lang = parse_line(line)
        except ValueError as exc:
            result: dict[str, Any] = {"error": f"line {number}: {exc}"}
        else:
            result = classifier.classify(title, summary, lang).to_dict()
        # click.echo flushes, so a caller feeding lines one by one reads each answer at once.
        click.echo(json.dumps(result, ensure_ascii=False))


def _lines() -> Iterator[str]:
    """Lines of stdin; undecodable bytes become U+FFFD, so a bad line is answered, not fatal."""
    raw = getattr(sys.stdin, "buffer", None)
    if raw is None:  # a text-only stdin (some embedders): take it as it is
        yield from sys.stdin
        return
    for chunk in raw:
        yield chunk.decode("utf-8", errors="replace")


def parse_line(line: str) -> tuple[str, str, str | None]:
    """``(title, summary, lang)`` from one JSON line; `ValueError` says what is wrong."""
    try:
        doc = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"expected a JSON object, got {type(doc).__name__}")
    if "title" not in doc and "summary" not in doc:
        raise ValueError('needs "title" or "summary"')
    texts = []
    for key in ("title", "summary"):
        value = doc.get(key)
        if value is not None and not isinstance(value, str):
            raise ValueError(f'"{key}" must be a string or null, got {type(value).__name__}')
        texts.append(value or "")
    lang = doc.get("lang")
    if lang is not None and lang not in LANGS:
        raise ValueError(f'"lang" must be "ar", "en" or null, got {lang!r}')
    return texts[0], texts[1], lang


COMMANDS = [classify_command]

"""The recorded feeds under ``tests/data/feeds``, in both languages, broken ones included."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data" / "feeds"


def recorded(name: str) -> bytes:
    """A recorded feed from ``tests/data/feeds``."""
    return (DATA / name).read_bytes()

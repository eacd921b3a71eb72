"""Text and fact fingerprints for story dedupe (pure functions, no Redis).

Story index and change worker share them: the worker looks candidates up with
them, the projection indexes stories with them, so replay indexes what live did.

- ``tokens``: NFKC, casefold, Arabic normalisation (``sorawatch.arabic``), words
  of two letters or more, Arabic attached prefixes (و، ال، ب ...) removed.
- ``minhash`` / ``bands``: 48 min-hashes in 16 bands of 3, so two texts with a
  token-set Jaccard of 0.6 share a band with probability ~0.98, and of 0.3 only
  ~0.35: the band buckets give few candidates to verify exactly.
- ``signatures``: the facts an item asserts, one string per fact, comparable
  across languages and wordings (status value + version; plan + price; partner).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any

from sorawatch.arabic import normalize_for_matching, strip_prefixes

BANDS = 16
ROWS = 3
_PRIME = (1 << 61) - 1
_WORD = re.compile(r"\w{2,}")


def _coefficients() -> list[tuple[int, int]]:
    out = []
    for i in range(BANDS * ROWS):
        h = hashlib.blake2b(f"sorawatch-minhash-{i}".encode(), digest_size=16).digest()
        out.append(
            (int.from_bytes(h[:8], "big") % (_PRIME - 1) + 1, int.from_bytes(h[8:], "big") % _PRIME)
        )
    return out


_COEF = _coefficients()


def tokens(*texts: str | None) -> frozenset[str]:
    """The set of normalised words in ``texts``."""
    folded = normalize_for_matching(" ".join(t for t in texts if t))
    out = set()
    for word in _WORD.findall(folded):
        readings = strip_prefixes(word)
        out.add(readings[-1])
    return frozenset(out)


def jaccard(a: Iterable[str], b: Iterable[str]) -> float:
    sa, sb = set(a), set(b)
    if not sa or not sb:
        return 0.0
    return len(sa & sb) / len(sa | sb)


def minhash(words: Iterable[str]) -> list[int]:
    """``BANDS * ROWS`` min-hashes of a token set (stable across processes)."""
    hashes = [
        int.from_bytes(hashlib.blake2b(w.encode("utf-8"), digest_size=8).digest(), "big")
        for w in words
    ]
    if not hashes:
        return []
    return [min((a * h + b) % _PRIME for h in hashes) for a, b in _COEF]


def bands(words: Iterable[str], prefix: str = "b") -> list[str]:
    """One bucket name per band (``prefix`` keeps title and body buckets apart)."""
    sig = minhash(words)
    if not sig:
        return []
    out = []
    for i in range(BANDS):
        chunk = ",".join(str(v) for v in sig[i * ROWS : (i + 1) * ROWS])
        out.append(f"{prefix}{i}:{hashlib.blake2b(chunk.encode(), digest_size=8).hexdigest()}")
    return out


def _n(value: Any) -> str:
    return " ".join(normalize_for_matching(str(value or "")).split())


def amount(value: Any) -> str:
    try:
        return f"{float(value):.2f}"
    except (TypeError, ValueError):
        return _n(value)


def status_signature(facts: dict[str, Any]) -> str | None:
    if not facts.get("status"):
        return None
    where = ",".join(sorted(_n(w) for w in facts.get("where") or []))
    return f"status|{_n(facts['status'])}|{_n(facts.get('version'))}|{where}"


def plan_signature(plan: dict[str, Any]) -> str:
    return (
        f"pricing|{_n(plan.get('plan'))}|{amount(plan.get('amount'))}"
        f"|{_n(plan.get('currency'))}|{_n(plan.get('period'))}"
    )


def partner_signature(name: str) -> str:
    return f"partner|{_n(name)}"


def signatures(facts: dict[str, Any] | None) -> dict[str, list[str]]:
    """Fact signatures by topic: ``{"status": [...], "pricing": [...], "partnership": [...]}``."""
    facts = facts or {}
    out: dict[str, list[str]] = {"status": [], "pricing": [], "partnership": []}
    sig = status_signature(facts)
    if sig:
        out["status"].append(sig)
    out["pricing"] = sorted(
        {plan_signature(p) for p in facts.get("pricing") or [] if isinstance(p, dict)}
    )
    out["partnership"] = sorted({partner_signature(p) for p in facts.get("partners") or [] if p})
    return out


def all_signatures(facts: dict[str, Any] | None) -> set[str]:
    return {s for sigs in signatures(facts).values() for s in sigs}

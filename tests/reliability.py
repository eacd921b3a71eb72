"""Figures the fault and hostile tests record; printed as one table at the end of the run.

A fault test calls ``reliability.fault(name, injected=, expected=, delivered=, lost=,
duplicated=, bound=)``; a hostile test calls ``reliability.hostile(name, cases=)``.
The table is what the README's "Reliability" section shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Figures:
    faults: list[dict[str, Any]] = field(default_factory=list)
    hostile: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # measured figures, one line each

    def fault(
        self,
        name: str,
        *,
        injected: int,
        expected: int,
        delivered: int,
        lost: int,
        duplicated: int,
        bound: int | str = 0,
    ) -> None:
        self.faults.append(
            {"fault": name, "injected": injected, "expected": expected, "delivered": delivered,
             "lost": lost, "duplicated": duplicated, "bound": bound}
        )  # fmt: skip

    def hostile_cases(self, name: str, cases: int) -> None:
        self.hostile[name] = self.hostile.get(name, 0) + cases

    def note(self, line: str) -> None:
        """A measured figure printed under the table (e.g. how long mail took beside a
        slow endpoint)."""
        self.notes.append(line)

    def table(self) -> list[str]:
        lines: list[str] = []
        if self.faults:
            lines += [
                "| fault | injected | expected | delivered | lost | duplicated (bound) |",
                "|---|---:|---:|---:|---:|---:|",
            ]
            for f in self.faults:
                lines.append(
                    f"| {f['fault']} | {f['injected']} | {f['expected']} | {f['delivered']} "
                    f"| {f['lost']} | {f['duplicated']} (≤ {f['bound']}) |"
                )
        if self.hostile:
            if lines:
                lines.append("")
            lines += ["| hostile input | cases tried |", "|---|---:|"]
            lines += [f"| {name} | {n} |" for name, n in sorted(self.hostile.items())]
        if self.notes:
            lines += ["", *(f"- {n}" for n in self.notes)]
        return lines


FIGURES = Figures()

# Hostile-input classes recorded from more than one file (tests/web and tests/hostile).
TOKENS = "web: forged, tampered, expired and cross-purpose tokens"
ADMIN_TOKEN = "web: missing or wrong admin token"
BODIES = "web: malformed and oversized bodies"
CRLF_TITLES = "feeds: CR/LF and 10,000-character titles (feed → event → mail)"

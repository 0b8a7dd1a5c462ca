"""The rows every benchmark returns, the table `bench/run.py` prints and the JSON it writes.

A row is one measure: its value and unit, the raw baseline measured in the same run (same unit),
their ratio, the target (issue 13's, as text) and whether it is met. Nothing here does I/O
except `rss_mib`, which reads /proc.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Row:
    name: str
    value: float | None
    """None: not measured (the reason is in the name or the target)"""
    unit: str
    baseline: float | None = None
    target: str = ""
    met: bool | None = None
    """None: no target, or not judged"""

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": None if self.value is None else round(self.value, 4),
            "unit": self.unit,
            "baseline": None if self.baseline is None else round(self.baseline, 4),
            "ratio": None if self.ratio is None else round(self.ratio, 3),
            "target": self.target,
            "met": self.met,
        }


def at_least(ratio: float, value: float | None, baseline: float | None) -> bool | None:
    """A throughput target: `value` ≥ `ratio` × `baseline`."""
    if value is None or not baseline:
        return None
    return value >= ratio * baseline


def below(limit: float, *values: float | None) -> bool | None:
    """A time target: every one of `values` under `limit`."""
    if any(v is None for v in values):
        return None
    return all(v < limit for v in values if v is not None)


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "not measured"
    if unit == "ms":
        return f"{value:,.1f} ms"
    if unit == "s":
        return f"{value:,.2f} s"
    if unit == "MiB":
        return f"{value:,.0f} MiB"
    if unit == "×":
        return f"{value:.2f}×"
    return f"{value:,.0f} {unit}"


def table(rows: Sequence[Row]) -> str:
    """The rows as one Markdown table: name, value, baseline, ratio, target, met."""
    head = ("measure", "value", "baseline", "ratio", "target", "met")
    cells = [
        (
            r.name,
            fmt(r.value, r.unit),
            "" if r.baseline is None else fmt(r.baseline, r.unit),
            "" if r.ratio is None else f"{r.ratio:.2f}×",
            r.target,
            "" if r.met is None else ("yes" if r.met else "NO"),
        )
        for r in rows
    ]
    widths = [max(len(c[i]) for c in [head, *cells]) for i in range(len(head))]
    right = {1, 2, 3}

    def line(c: Iterable[str]) -> str:
        parts = [
            v.rjust(w) if i in right else v.ljust(w)
            for i, (v, w) in enumerate(zip(c, widths, strict=True))
        ]
        return "| " + " | ".join(parts) + " |"

    rule = (
        "|"
        + "|".join(
            "-" * (w + 1) + ":" if i in right else "-" * (w + 2) for i, w in enumerate(widths)
        )
        + "|"
    )
    return "\n".join([line(head), rule, *(line(c) for c in cells)])


def write_json(rows: Sequence[Row], path: Path) -> None:
    path.write_text(json.dumps([r.as_json() for r in rows], ensure_ascii=False, indent=1) + "\n")


def rss_mib(pid: int | None) -> float | None:
    """A process's resident memory (VmRSS) in MiB, None when it is gone."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system) a process has used: this one when `pid` is None."""
    if pid is None:
        import time

        return time.process_time()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

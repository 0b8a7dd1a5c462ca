"""Server-rendered SVG charts: the geometry is computed here (pure), the templates draw it.

Every chart also has its figures as text beside it (a table or a label per bar), so a screen
reader and a phone read the numbers, not the picture."""

from __future__ import annotations

from dataclasses import dataclass

from .formatting import vi_percent


def clamp_percent(value: float | None) -> float:
    if value is None:
        return 0.0
    return max(0.0, min(100.0, float(value)))


@dataclass(frozen=True)
class Column:
    x: float
    y: float
    width: float
    height: float
    value_text: str
    label: str
    series: int


@dataclass(frozen=True)
class ColumnChart:
    width: int
    height: int
    plot_top: int
    plot_bottom: int
    columns: list[Column]
    groups: list[tuple[float, str]]
    """(x of the group's centre, label)"""


def percent_columns(
    groups: list[tuple[str, list[float | None]]],
    *,
    width: int = 480,
    height: int = 220,
    gap: float = 0.3,
) -> ColumnChart:
    """Grouped columns for percentages (0–100): one group per label, one column per series."""
    top, bottom = 20, height - 40
    plot = bottom - top
    n = max(len(groups), 1)
    group_width = width / n
    columns: list[Column] = []
    centres: list[tuple[float, str]] = []
    for gi, (label, values) in enumerate(groups):
        inner = group_width * (1 - gap)
        col_w = inner / max(len(values), 1)
        start = gi * group_width + (group_width - inner) / 2
        for si, value in enumerate(values):
            h = plot * clamp_percent(value) / 100
            columns.append(
                Column(
                    x=round(start + si * col_w, 2),
                    y=round(bottom - h, 2),
                    width=round(col_w * 0.9, 2),
                    height=round(h, 2),
                    value_text=vi_percent(value),
                    label=label,
                    series=si,
                )
            )
        centres.append((round(gi * group_width + group_width / 2, 2), label))
    return ColumnChart(width, height, top, bottom, columns, centres)


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    percent_of_max: float


def count_bars(items: list[tuple[str, int]]) -> list[Bar]:
    """Horizontal bars for counts, scaled to the largest (all zero: empty bars)."""
    top = max((v for _, v in items), default=0)
    return [Bar(label, v, (100.0 * v / top) if top else 0.0) for label, v in items]

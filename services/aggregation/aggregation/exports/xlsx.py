"""Excel exports of the compliance and indicator tables (SPEC §8): Vietnamese headers, numbers
stored as numbers (percentages as 0–1 with a percent format), header row frozen.

Workbooks are written by `ooxml.Workbook`, row by row, to a file the answer streams (a
country's compliance workbook holds a row per unit and target: 57,000 rows).

Text is never a formula (issue 9): every cell that holds text — unit names, titles, anything a
person typed — is written as a string, and one that begins like a formula (`=`, `+`, `-`, `@`,
a tab or a carriage return) is also marked to be shown as typed (Excel's quote prefix), so
neither this library nor a spreadsheet opening the file evaluates it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import IO, Any

from lhpn_shared.clock import LOCAL_TZ

from ..domain.compliance import ComplianceResult, TargetCompliance
from ..domain.indicators import IndicatorsResult
from .labels import (
    LEVELS_VI,
    MET_VI,
    NOT_MET_VI,
    kind_label,
    measure_label,
    vi_short_date,
)
from .ooxml import FORMULA_STARTS, Column, Workbook

PERCENT = "0.00%"
GOAL = "0%"
DATE = "DD/MM/YYYY"
_FLAG_FILL = "FCE4D6"
_BAD_TITLE = re.compile(r"[\[\]:*?/\\]")

__all__ = ["FORMULA_STARTS", "compliance_workbook", "indicators_workbook"]


def _fraction(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _columns(*columns: tuple[str, int, str | None]) -> list[Column]:
    return [Column(name, width, number_format) for name, width, number_format in columns]


def _info(book: Workbook, pairs: Sequence[tuple[str, Any]]) -> None:
    book.add_sheet(
        "Thông tin",
        _columns(("Mục", 28, None), ("Nội dung", 80, None)),
        pairs,
        row_count=len(pairs),
    )


def _sheet_title(code: str, taken: set[str]) -> str:
    base = _BAD_TITLE.sub("_", code)[:28] or "Chỉ tiêu"
    title, n = base, 1
    while title.lower() in taken:
        n += 1
        title = f"{base}_{n}"
    taken.add(title.lower())
    return title


def _goal_text(target: TargetCompliance) -> str:
    if target.goal_reached is None:
        return "Không có đơn vị thuộc phạm vi"
    return "Đạt mục tiêu" if target.goal_reached else "Chưa đạt mục tiêu"


def compliance_workbook(result: ComplianceResult, out: IO[bytes]) -> None:
    """The compliance of a subtree as a workbook: a summary, one row per child unit and target,
    and one sheet per target with every unit in scope (compute with `with_units=True`)."""
    missing_units = [t.code for t in result.targets if t.in_scope and not t.units]
    if missing_units:
        raise ValueError(
            f"targets {missing_units} have no unit rows: compute compliance with with_units=True"
        )
    book = Workbook(out)
    book.add_sheet(
        "Tổng hợp",
        _columns(
            ("Mã chỉ tiêu", 12, None),
            ("Chỉ tiêu", 70, None),
            ("Số đơn vị thuộc phạm vi", 14, None),
            ("Số đơn vị đạt", 12, None),
            ("Số đơn vị chưa đạt", 12, None),
            ("Tỷ lệ đạt", 12, PERCENT),
            ("Mục tiêu", 10, GOAL),
            ("Đánh giá", 26, None),
        ),
        (
            (
                t.code,
                t.title,
                t.in_scope,
                t.met,
                t.in_scope - t.met,
                _fraction(t.met, t.in_scope),
                t.goal_percent / 100,
                _goal_text(t),
            )
            for t in result.targets
        ),
        row_count=len(result.targets),
    )
    book.add_sheet(
        "Theo đơn vị trực thuộc",
        _columns(
            ("Mã chỉ tiêu", 12, None),
            ("Mã đơn vị", 12, None),
            ("Tên đơn vị", 32, None),
            ("Cấp", 12, None),
            ("Số đơn vị thuộc phạm vi", 14, None),
            ("Số đơn vị đạt", 12, None),
            ("Số đơn vị chưa đạt", 12, None),
            ("Tỷ lệ đạt", 12, PERCENT),
        ),
        (
            (
                t.code,
                c.unit_id,
                c.name,
                LEVELS_VI[c.level],
                c.in_scope,
                c.met,
                c.in_scope - c.met,
                _fraction(c.met, c.in_scope),
            )
            for t in result.targets
            for c in t.children
        ),
        row_count=sum(len(t.children) for t in result.targets),
    )
    taken = {"tổng hợp", "theo đơn vị trực thuộc", "thông tin"}
    unit_columns = _columns(
        ("Mã đơn vị", 12, None),
        ("Tên đơn vị", 32, None),
        ("Cấp", 12, None),
        ("Mã đơn vị cấp trên", 14, None),
        ("Ngày đạt", 12, DATE),
        ("Kết quả", 12, None),
    )
    for t in result.targets:
        book.add_sheet(
            _sheet_title(t.code, taken),
            unit_columns,
            (
                (
                    u.unit_id,
                    u.name,
                    LEVELS_VI[u.level],
                    u.parent_id,
                    u.met_on,
                    MET_VI if u.met else NOT_MET_VI,
                )
                for u in t.units
            ),
            row_count=len(t.units),
        )
    as_of = result.as_of.astimezone(LOCAL_TZ)
    _info(
        book,
        [
            ("Đơn vị", f"{result.unit.name} (mã {result.unit.unit_id})"),
            ("Kế hoạch", f"{result.plan_number} – {result.plan_title}"),
            ("Năm", result.year),
            ("Tính đến", f"{as_of:%H:%M} {vi_short_date(as_of.date())}"),
            (
                "Đơn vị thuộc phạm vi",
                f"các đơn vị có hiệu lực ngày {vi_short_date(result.scope_on)}",
            ),
            ("Nửa năm đã kết thúc", ", ".join(result.ended_half_years) or "Chưa có"),
        ],
    )
    book.close()


def indicators_workbook(result: IndicatorsResult, out: IO[bytes]) -> None:
    """Recorded and declared indicator totals side by side, differences highlighted."""
    book = Workbook(out)
    book.add_sheet(
        "Chỉ số",
        _columns(
            ("Mã chỉ số", 36, None),
            ("Loại hoạt động", 44, None),
            ("Chỉ số", 30, None),
            ("Theo hoạt động đã ghi nhận", 16, None),
            ("Theo báo cáo", 14, None),
            ("Chênh lệch (báo cáo − ghi nhận)", 16, None),
            ("Ghi chú", 16, None),
        ),
        (
            (
                r.code,
                kind_label(r.kind),
                measure_label(r.kind, r.measure),
                r.recorded,
                r.declared,
                r.difference,
                "Có chênh lệch" if r.differs else None,
            )
            for r in result.rows
        ),
        row_count=len(result.rows),
        fills=(_FLAG_FILL if r.differs else None for r in result.rows),
    )
    _info(
        book,
        [
            ("Đơn vị", f"{result.unit.name} (mã {result.unit.unit_id})"),
            ("Kỳ", result.period),
            ("Từ ngày", vi_short_date(result.start_on)),
            ("Đến ngày", vi_short_date(result.end_on)),
            (
                "Loại báo cáo",
                result.report_type
                or f"Báo cáo tháng ({', '.join(result.report_types) or 'không có'})",
            ),
            ("Số báo cáo đã tổng hợp", result.reports),
            ("Số chỉ số có chênh lệch", result.differing),
        ],
    )
    book.close()

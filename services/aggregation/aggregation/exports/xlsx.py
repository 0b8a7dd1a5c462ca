"""Excel exports of the compliance and indicator tables (SPEC §8): Vietnamese headers, numbers
stored as numbers (percentages as 0–1 with a percent format), header row frozen."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from io import BytesIO
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

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

PERCENT = "0.00%"
GOAL = "0%"
_HEADER_FONT = Font(bold=True)
_HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")
_FLAG_FILL = PatternFill("solid", fgColor="FCE4D6")
_BAD_TITLE = re.compile(r"[\[\]:*?/\\]")

Column = tuple[str, int, str | None]
"""(header, width, number format)"""


def _fraction(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _sheet(
    book: Workbook, title: str, columns: Sequence[Column], rows: Iterable[Sequence[Any]]
) -> Worksheet:
    """A sheet with a bold, frozen, filterable header row and one row per item."""
    sheet = book.create_sheet(title)
    sheet.append([header for header, _, _ in columns])
    for cell in sheet[1]:
        cell.font = _HEADER_FONT
        cell.fill = _HEADER_FILL
        cell.alignment = Alignment(wrap_text=True, vertical="center")
    for row in rows:
        sheet.append(list(row))
    for index, (_, width, number_format) in enumerate(columns, start=1):
        letter = get_column_letter(index)
        sheet.column_dimensions[letter].width = width
        if number_format:
            for (cell,) in sheet.iter_rows(min_row=2, min_col=index, max_col=index):
                cell.number_format = number_format
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = sheet.dimensions
    return sheet


def _info(book: Workbook, pairs: Sequence[tuple[str, Any]]) -> None:
    _sheet(book, "Thông tin", [("Mục", 28, None), ("Nội dung", 80, None)], pairs)


def _to_bytes(book: Workbook) -> bytes:
    out = BytesIO()
    book.save(out)
    return out.getvalue()


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


def compliance_workbook(result: ComplianceResult) -> bytes:
    """The compliance of a subtree as a workbook: a summary, one row per child unit and target,
    and one sheet per target with every unit in scope (compute with `with_units=True`)."""
    missing_units = [t.code for t in result.targets if t.in_scope and not t.units]
    if missing_units:
        raise ValueError(
            f"targets {missing_units} have no unit rows: compute compliance with with_units=True"
        )
    book = Workbook()
    book.remove(book.active)
    summary = _sheet(
        book,
        "Tổng hợp",
        [
            ("Mã chỉ tiêu", 12, None),
            ("Chỉ tiêu", 70, None),
            ("Số đơn vị thuộc phạm vi", 14, None),
            ("Số đơn vị đạt", 12, None),
            ("Số đơn vị chưa đạt", 12, None),
            ("Tỷ lệ đạt", 12, PERCENT),
            ("Mục tiêu", 10, GOAL),
            ("Đánh giá", 26, None),
        ],
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
    )
    for (cell,) in summary.iter_rows(min_row=2, min_col=2, max_col=2):
        cell.alignment = Alignment(wrap_text=True, vertical="top")
    _sheet(
        book,
        "Theo đơn vị trực thuộc",
        [
            ("Mã chỉ tiêu", 12, None),
            ("Mã đơn vị", 12, None),
            ("Tên đơn vị", 32, None),
            ("Cấp", 12, None),
            ("Số đơn vị thuộc phạm vi", 14, None),
            ("Số đơn vị đạt", 12, None),
            ("Tỷ lệ đạt", 12, PERCENT),
            ("Đơn vị chưa đạt", 80, None),
        ],
        (
            (
                t.code,
                c.unit_id,
                c.name,
                LEVELS_VI[c.level],
                c.in_scope,
                c.met,
                _fraction(c.met, c.in_scope),
                "; ".join(u.name for u in c.not_met),
            )
            for t in result.targets
            for c in t.children
        ),
    )
    taken = {"tổng hợp", "theo đơn vị trực thuộc", "thông tin"}
    for t in result.targets:
        _sheet(
            book,
            _sheet_title(t.code, taken),
            [
                ("Mã đơn vị", 12, None),
                ("Tên đơn vị", 32, None),
                ("Cấp", 12, None),
                ("Mã đơn vị cấp trên", 14, None),
                ("Số hoạt động", 12, None),
                ("Kết quả", 12, None),
            ],
            (
                (
                    u.unit_id,
                    u.name,
                    LEVELS_VI[u.level],
                    u.parent_id,
                    u.activities,
                    MET_VI if u.met else NOT_MET_VI,
                )
                for u in t.units
            ),
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
                "Nửa năm đã kết thúc",
                ", ".join(result.ended_half_years) or "Chưa có",
            ),
        ],
    )
    return _to_bytes(book)


def indicators_workbook(result: IndicatorsResult) -> bytes:
    """Recorded and declared indicator totals side by side, differences highlighted."""
    book = Workbook()
    book.remove(book.active)
    sheet = _sheet(
        book,
        "Chỉ số",
        [
            ("Mã chỉ số", 36, None),
            ("Loại hoạt động", 44, None),
            ("Chỉ số", 30, None),
            ("Theo hoạt động đã ghi nhận", 16, None),
            ("Theo báo cáo", 14, None),
            ("Chênh lệch (báo cáo − ghi nhận)", 16, None),
            ("Ghi chú", 16, None),
        ],
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
    )
    for row_index, row in enumerate(result.rows, start=2):
        if row.differs:
            for cell in sheet[row_index]:
                cell.fill = _FLAG_FILL
    _info(
        book,
        [
            ("Đơn vị", f"{result.unit.name} (mã {result.unit.unit_id})"),
            ("Kỳ", result.period),
            ("Từ ngày", vi_short_date(result.start_on)),
            ("Đến ngày", vi_short_date(result.end_on)),
            ("Loại báo cáo", result.report_type or "Tất cả"),
            ("Số báo cáo đã tổng hợp", result.reports),
            ("Số chỉ số có chênh lệch", result.differing),
        ],
    )
    return _to_bytes(book)

"""Excel exports of the compliance and indicator tables (SPEC §8): Vietnamese headers, numbers
stored as numbers (percentages as 0–1 with a percent format), header row frozen.

Workbooks are written in openpyxl's write-only mode, row by row, to a file the answer streams
(a country's compliance workbook holds a row per unit and target).

Text is never a formula (issue 9): every cell that holds text — unit names, titles, anything a
person typed — is written as a string, and one that begins like a formula (`=`, `+`, `-`, `@`,
a tab or a carriage return) is also marked to be shown as typed (Excel's quote prefix), so
neither this library nor a spreadsheet opening the file evaluates it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import IO, Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

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
DATE = "DD/MM/YYYY"
_HEADER_FONT = Font(bold=True)
_HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")
_FLAG_FILL = PatternFill("solid", fgColor="FCE4D6")
_BAD_TITLE = re.compile(r"[\[\]:*?/\\]")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

Column = tuple[str, int, str | None]
"""(header, width, number format)"""


def _fraction(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def cell(sheet: WriteOnlyWorksheet, value: Any, number_format: str | None = None) -> WriteOnlyCell:
    """A cell for `value`: text always as a string, never a formula (see the module docstring)."""
    out = WriteOnlyCell(sheet, value=value)
    if isinstance(value, str):
        out.data_type = "s"
        if value.startswith(FORMULA_STARTS):
            out.quotePrefix = True
    elif number_format and value is not None:
        out.number_format = number_format
    return out


class SheetWriter:
    """One sheet written row by row: a bold, frozen, filterable header row, then the rows."""

    def __init__(self, book: Workbook, title: str, columns: Sequence[Column]) -> None:
        self.sheet: WriteOnlyWorksheet = book.create_sheet(title)
        self.columns = columns
        self.rows = 0
        for index, (_, width, _) in enumerate(columns, start=1):
            self.sheet.column_dimensions[get_column_letter(index)].width = width
        self.sheet.freeze_panes = "A2"
        header = []
        for name, _, _ in columns:
            c = cell(self.sheet, name)
            c.font, c.fill = _HEADER_FONT, _HEADER_FILL
            c.alignment = Alignment(wrap_text=True, vertical="center")
            header.append(c)
        self.sheet.append(header)

    def row(self, values: Sequence[Any], *, fill: PatternFill | None = None) -> None:
        """One row; a value becomes a cell object only when it needs one (a number format, a
        fill, text that begins like a formula): a country's workbook has 70,000 rows."""
        cells: list[Any] = []
        for value, (_, _, number_format) in zip(values, self.columns, strict=True):
            plain = fill is None and (
                value is None
                or (isinstance(value, str) and not value.startswith(FORMULA_STARTS))
                or (not number_format and isinstance(value, int | float))
            )
            if plain:
                cells.append(value)
                continue
            c = cell(self.sheet, value, number_format)
            if fill is not None:
                c.fill = fill
            cells.append(c)
        self.sheet.append(cells)
        self.rows += 1

    def close(self) -> None:
        last = get_column_letter(len(self.columns))
        self.sheet.auto_filter.ref = f"A1:{last}{self.rows + 1}"


def _sheet(
    book: Workbook, title: str, columns: Sequence[Column], rows: Iterable[Sequence[Any]]
) -> None:
    writer = SheetWriter(book, title, columns)
    for row in rows:
        writer.row(row)
    writer.close()


def _info(book: Workbook, pairs: Sequence[tuple[str, Any]]) -> None:
    _sheet(book, "Thông tin", [("Mục", 28, None), ("Nội dung", 80, None)], pairs)


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
    book = Workbook(write_only=True)
    _sheet(
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
            ("Số đơn vị chưa đạt", 12, None),
            ("Tỷ lệ đạt", 12, PERCENT),
        ],
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
                ("Ngày đạt", 12, DATE),
                ("Kết quả", 12, None),
            ],
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
    book.save(out)


def indicators_workbook(result: IndicatorsResult, out: IO[bytes]) -> None:
    """Recorded and declared indicator totals side by side, differences highlighted."""
    book = Workbook(write_only=True)
    sheet = SheetWriter(
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
    )
    for r in result.rows:
        sheet.row(
            (
                r.code,
                kind_label(r.kind),
                measure_label(r.kind, r.measure),
                r.recorded,
                r.declared,
                r.difference,
                "Có chênh lệch" if r.differs else None,
            ),
            fill=_FLAG_FILL if r.differs else None,
        )
    sheet.close()
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
    book.save(out)

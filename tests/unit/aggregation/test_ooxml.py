"""The exports' own .xlsx writer, read back with openpyxl."""

from datetime import date
from io import BytesIO

import openpyxl
import pytest

from aggregation.exports.ooxml import Column, Workbook, column_letter

COLUMNS = [Column("Tên", 30), Column("Ngày", 12, "DD/MM/YYYY"), Column("Tỷ lệ", 10, "0.00%")]


def written(rows, **kwargs) -> openpyxl.Workbook:
    out = BytesIO()
    book = Workbook(out)
    book.add_sheet("Bảng 'một'", COLUMNS, rows, row_count=len(rows), **kwargs)
    book.close()
    return openpyxl.load_workbook(BytesIO(out.getvalue()))


def test_values_come_back_as_written_text_as_text_numbers_and_dates_as_such():
    rows = [
        ('Hội <LHPN> & "xã"', date(2021, 3, 26), 0.5),
        ("\t=1+2", None, 1),
        ("a\x01b ", date(2021, 12, 31), None),
    ]
    sheet = written(rows).active
    values = [tuple(c.value for c in row) for row in sheet.iter_rows(min_row=2)]
    assert values[0][0] == 'Hội <LHPN> & "xã"'
    assert values[0][1].date() == date(2021, 3, 26) and values[0][2] == 0.5
    assert values[1] == ("\t=1+2", None, 1)
    assert values[2][0] == "ab " and values[2][1].date() == date(2021, 12, 31)
    assert sheet["C2"].number_format == "0.00%"
    assert sheet["B2"].number_format == "DD/MM/YYYY"
    assert sheet["A3"].quotePrefix and sheet["A3"].data_type == "s"
    assert not sheet["A2"].quotePrefix


def test_the_header_is_bold_frozen_and_filtered_and_the_columns_keep_their_widths():
    book = written([("x", None, None)] * 3, fills=["FCE4D6", None, None])
    sheet = book["Bảng 'một'"]
    assert [c.value for c in sheet[1]] == ["Tên", "Ngày", "Tỷ lệ"]
    assert sheet["A1"].font.b and sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == "A1:C4"
    assert sheet.column_dimensions["A"].width == 30
    assert sheet["B2"].fill.fgColor.rgb == "FFFCE4D6" and sheet["B3"].fill.fill_type is None


def test_a_sheet_with_more_or_fewer_rows_than_announced_is_refused():
    book = Workbook(BytesIO())
    with pytest.raises(ValueError, match="1 rows, 2 announced"):
        book.add_sheet("S", COLUMNS, [("a", None, None)], row_count=2)


def test_column_letters_go_past_z():
    assert [column_letter(i) for i in (1, 26, 27, 52, 703)] == ["A", "Z", "AA", "AZ", "AAA"]

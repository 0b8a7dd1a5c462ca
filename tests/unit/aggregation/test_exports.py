"""The exports, opened again with the libraries that read them, hold the same figures."""

from __future__ import annotations

from datetime import date, datetime
from io import BytesIO

import docx
import openpyxl
import pytest

from aggregation.domain.compliance import ComplianceResult, compliance
from aggregation.domain.indicators import IndicatorsResult, indicators
from aggregation.domain.rates import all_reporting_rates
from aggregation.exports.docx import heading_for, thematic_report_docx
from aggregation.exports.labels import vi_day, vi_number, vi_percent
from aggregation.exports.xlsx import compliance_workbook, indicators_workbook
from lhpn_shared.clock import LOCAL_TZ
from lhpn_shared.contracts.units import UnitTree
from tests.unit.aggregation.generated import generate
from tests.unit.aggregation.memory import MemoryReadModel

AS_OF = datetime(2021, 10, 25, 9, 0, tzinfo=LOCAL_TZ)


@pytest.fixture(scope="module")
def answers() -> tuple[ComplianceResult, IndicatorsResult, list, object]:
    generated = generate(7)
    model = MemoryReadModel().handle_all(generated.events)
    tree = UnitTree(generated.units)
    counters = model.activity_counters_of(2021)
    reports = list(model.reports.values())
    result = compliance(generated.plan, tree, "54", AS_OF, counters, with_units=True)
    totals = indicators(tree, "54", "2021-Q3", counters, reports)
    rates = all_reporting_rates(generated.plan, tree, "54", reports, due_by=AS_OF)
    return result, totals, rates, (generated, tree)


def rows_of(sheet) -> list[dict]:
    header, *rows = sheet.iter_rows(values_only=True)
    return [dict(zip(header, row, strict=True)) for row in rows]


def test_the_compliance_workbook_holds_the_figures_with_vietnamese_headers(answers):
    result, *_ = answers
    book = openpyxl.load_workbook(BytesIO(compliance_workbook(result)))
    assert book.sheetnames == [
        "Tổng hợp",
        "Theo đơn vị trực thuộc",
        "T1",
        "T2",
        "T3",
        "T4",
        "T5",
        "T6",
        "Thông tin",
    ]
    summary = book["Tổng hợp"]
    assert summary.freeze_panes == "A2"
    for row, target in zip(rows_of(summary), result.targets, strict=True):
        assert row["Mã chỉ tiêu"] == target.code
        assert (row["Số đơn vị thuộc phạm vi"], row["Số đơn vị đạt"]) == (
            target.in_scope,
            target.met,
        )
        assert row["Tỷ lệ đạt"] == pytest.approx(target.met / target.in_scope)
        assert row["Mục tiêu"] == 1
    for (cell,) in summary.iter_rows(min_row=2, min_col=6, max_col=6):
        assert cell.number_format == "0.00%" and isinstance(cell.value, int | float)
    for target in result.targets:
        sheet = book[target.code]
        assert sheet.freeze_panes == "A2"
        rows = rows_of(sheet)
        assert len(rows) == target.in_scope
        assert sum(r["Kết quả"] == "Đạt" for r in rows) == target.met
        assert {r["Mã đơn vị"] for r in rows if r["Kết quả"] == "Chưa đạt"} == {
            u.unit_id for u in target.not_met
        }
    by_child = rows_of(book["Theo đơn vị trực thuộc"])
    tuy_hoa = next(r for r in by_child if r["Mã chỉ tiêu"] == "T2" and r["Mã đơn vị"] == "555")
    child = next(c for c in result.targets[1].children if c.unit_id == "555")
    assert (tuy_hoa["Tên đơn vị"], tuy_hoa["Số đơn vị đạt"]) == ("Thành phố Tuy Hoà", child.met)


def test_the_compliance_workbook_needs_every_unit_in_scope(answers):
    result, *_ = answers
    without_units = result.model_copy(
        update={"targets": [t.model_copy(update={"units": []}) for t in result.targets]}
    )
    with pytest.raises(ValueError, match="with_units=True"):
        compliance_workbook(without_units)


def test_the_indicators_workbook_holds_recorded_and_declared_totals(answers):
    _, totals, *_ = answers
    book = openpyxl.load_workbook(BytesIO(indicators_workbook(totals)))
    rows = rows_of(book["Chỉ số"])
    assert book["Chỉ số"].freeze_panes == "A2"
    assert [r["Mã chỉ số"] for r in rows] == [r.code for r in totals.rows]
    for row, expected in zip(rows, totals.rows, strict=True):
        assert (row["Theo hoạt động đã ghi nhận"], row["Theo báo cáo"]) == (
            expected.recorded,
            expected.declared,
        )
        assert row["Chênh lệch (báo cáo − ghi nhận)"] == expected.difference
        assert (row["Ghi chú"] == "Có chênh lệch") == expected.differs
    supervision = next(r for r in rows if r["Mã chỉ số"] == "supervision.count")
    assert (supervision["Loại hoạt động"], supervision["Chỉ số"]) == ("Giám sát", "Số hoạt động")


def test_the_thematic_report_is_a_vietnamese_administrative_document_with_the_figures(answers):
    result, totals, rates, (generated, tree) = answers
    heading = heading_for(tree.units["54"], generated.plan, date(2021, 10, 25))
    document = docx.Document(BytesIO(thematic_report_docx(heading, result, rates, totals)))
    header, *_ = document.tables
    left, right = (cell.text for cell in header.rows[0].cells)
    assert "HỘI LHPN TỈNH PHÚ YÊN" in left and "BAN THƯỜNG VỤ" in left and "Số: …/BC-BTV" in left
    assert "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM" in right and "Độc lập – Tự do – Hạnh phúc" in right
    assert "Phú Yên, ngày 25 tháng 10 năm 2021" in right
    text = "\n".join(p.text for p in document.paragraphs)
    assert "BÁO CÁO" in text
    for heading_text in (
        "I. KẾT QUẢ THỰC HIỆN CÁC CHỈ TIÊU",
        "II. TÌNH HÌNH THỰC HIỆN CHẾ ĐỘ BÁO CÁO",
        "III. SỐ LIỆU HOẠT ĐỘNG",
    ):
        assert heading_text in text
    for target in result.targets:
        figures = f"{vi_number(target.met)}/{vi_number(target.in_scope)} đơn vị đạt"
        assert f"{figures} ({vi_percent(target.percent)}" in text
    targets_table = document.tables[1]
    for row, target in zip(targets_table.rows[1:], result.targets, strict=True):
        cells = [c.text for c in row.cells]
        assert cells[2:5] == [
            vi_number(target.in_scope),
            vi_number(target.met),
            vi_percent(target.percent),
        ]
        for unit in target.not_met[:5]:
            assert unit.name in cells[5]
    rates_table = document.tables[2]
    assert len(rates_table.rows) == len(rates) + 1
    assert [c.text for c in rates_table.rows[1].cells][3:5] == [
        vi_number(rates[0].expected),
        vi_number(rates[0].received),
    ]
    indicator_cells = {c.text for row in document.tables[3].rows for c in row.cells}
    supervision = next(r for r in totals.rows if r.code == "supervision.count")
    assert {"Giám sát", "Số hoạt động", vi_number(supervision.recorded)} <= indicator_cells
    assert "TM. BAN THƯỜNG VỤ" in document.tables[-1].rows[0].cells[1].text
    assert "Nơi nhận:" in document.tables[-1].rows[0].cells[0].text
    assert document.styles["Normal"].font.name == "Times New Roman"


def test_dates_are_written_the_administrative_way():
    assert vi_day(date(2021, 3, 5)) == "ngày 05 tháng 3 năm 2021"
    assert vi_day(date(2021, 1, 20)) == "ngày 20 tháng 01 năm 2021"
    assert vi_day(date(2021, 10, 30)) == "ngày 30 tháng 10 năm 2021"
    assert (vi_number(12345), vi_percent(82.35), vi_percent(100.0), vi_percent(None)) == (
        "12.345",
        "82,35%",
        "100%",
        "–",
    )

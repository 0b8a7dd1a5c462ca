"""The exports, opened again with the libraries that read them, hold the same figures."""

from __future__ import annotations

import asyncio
import zipfile
from datetime import date, datetime
from io import BytesIO

import docx
import openpyxl
import pytest

from aggregation.domain.compliance import ComplianceResult, compliance
from aggregation.domain.indicators import IndicatorsResult
from aggregation.domain.rates import all_reporting_rates
from aggregation.exports.docx import heading_for, thematic_report_docx
from aggregation.exports.labels import vi_day, vi_number, vi_percent
from aggregation.exports.xlsx import compliance_workbook, indicators_workbook
from aggregation.queries import HeadingChoices
from lhpn_shared.clock import LOCAL_TZ
from tests.unit.aggregation.generated import generate, stream
from tests.unit.aggregation.memory import consume

AS_OF = datetime(2021, 10, 25, 9, 0, tzinfo=LOCAL_TZ)


@pytest.fixture(scope="module")
def answers() -> tuple[ComplianceResult, IndicatorsResult, list, object]:
    """Computed once, in a loop of its own (the in-memory service holds no connection)."""
    return asyncio.run(_answers())


async def _answers() -> tuple[ComplianceResult, IndicatorsResult, list, object]:
    generated = generate(7)
    svc = await consume(stream(generated))
    result = await svc.compliance(generated.plan.plan_id, "54", AS_OF, with_units=True)
    totals = await svc.indicators("54", "2021-Q3")
    node = await svc.node("54")
    part = await svc.plan_part(generated.plan, "54")
    rates = all_reporting_rates(generated.plan, node.unit, node.children, part, due_by=AS_OF)
    return result, totals, rates, (generated, node, part, svc)


def workbook(write, result) -> openpyxl.Workbook:
    out = BytesIO()
    write(result, out)
    return openpyxl.load_workbook(BytesIO(out.getvalue()))


def rows_of(sheet) -> list[dict]:
    header, *rows = sheet.iter_rows(values_only=True)
    return [dict(zip(header, row, strict=True)) for row in rows]


def test_the_compliance_workbook_holds_the_figures_with_vietnamese_headers(answers):
    result, *_ = answers
    book = workbook(compliance_workbook, result)
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
        compliance_workbook(without_units, BytesIO())


def test_the_indicators_workbook_holds_recorded_and_declared_totals(answers):
    _, totals, *_ = answers
    book = workbook(indicators_workbook, totals)
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
    _, totals, rates, (generated, node, part, _) = answers
    result = compliance(generated.plan, node.unit, node.children, part, AS_OF, list_limit=1)
    heading = heading_for(node.unit, generated.plan, date(2021, 10, 25))
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
        for child in target.children:  # the units behind, counted per district
            if child.in_scope > child.met:
                assert f"{child.name}: {vi_number(child.in_scope - child.met)}" in cells[5]
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


async def test_the_report_s_number_date_and_signer_are_the_ones_asked_for(answers):
    generated, svc = answers[3][0], answers[3][3]
    choices = HeadingChoices(
        number="25/BC-BTV",
        dated_on=date(2021, 10, 28),
        signer_name="Nguyễn Thị Hoa",
        signer_title="Phó Chủ tịch",
    )
    content = await svc.thematic_report(generated.plan.plan_id, "54", AS_OF, choices)
    document = docx.Document(BytesIO(content))
    header, signature = document.tables[0], document.tables[-1]
    left, right = (cell.text for cell in header.rows[0].cells)
    assert "Số: 25/BC-BTV" in left
    assert "Phú Yên, ngày 28 tháng 10 năm 2021" in right
    signed = signature.rows[0].cells[1].text
    assert "PHÓ CHỦ TỊCH" in signed and "Nguyễn Thị Hoa" in signed
    defaults = docx.Document(
        BytesIO(await svc.thematic_report(generated.plan.plan_id, "54", AS_OF))
    )
    left, right = (cell.text for cell in defaults.tables[0].rows[0].cells)
    assert "Số: …/BC-BTV" in left and "ngày 25 tháng 10 năm 2021" in right
    assert "CHỦ TỊCH" in defaults.tables[-1].rows[0].cells[1].text


FORMULAS = ['=HYPERLINK("http://x","y")', "+1+2", "-3+cmd|' /C calc'!A0", "@SUM(A1)", "\t=1"]


def test_text_that_looks_like_a_formula_stays_text_in_every_workbook(answers):
    """Issue 9: unit names, titles, anything typed never become formulas."""
    result, totals, *_ = answers
    target = result.targets[0]
    renamed = [u.model_copy(update={"name": FORMULAS[i % 5]}) for i, u in enumerate(target.units)]
    hostile = result.model_copy(
        update={
            "plan_title": FORMULAS[0],
            "unit": result.unit.model_copy(update={"name": FORMULAS[1]}),
            "targets": [
                target.model_copy(
                    update={
                        "title": FORMULAS[2],
                        "units": renamed,
                        "children": [
                            c.model_copy(update={"name": FORMULAS[3]}) for c in target.children
                        ],
                    }
                ),
                *result.targets[1:],
            ],
        }
    )
    odd_rows = [r.model_copy(update={"code": FORMULAS[4]}) for r in totals.rows]
    for write, answer in (
        (compliance_workbook, hostile),
        (indicators_workbook, totals.model_copy(update={"rows": odd_rows})),
    ):
        out = BytesIO()
        write(answer, out)
        raw = out.getvalue()
        with zipfile.ZipFile(BytesIO(raw)) as archive:
            sheets = [n for n in archive.namelist() if n.startswith("xl/worksheets/")]
            assert sheets and not any(b"<f>" in archive.read(n) for n in sheets)
        book = openpyxl.load_workbook(BytesIO(raw))
        seen = set()
        for sheet in book.worksheets:
            for row in sheet.iter_rows():
                for cell in row:
                    assert cell.data_type != "f", (sheet.title, cell.coordinate, cell.value)
                    if cell.value in FORMULAS:
                        seen.add(cell.value)
                        assert cell.quotePrefix, (sheet.title, cell.coordinate)
        assert seen, "the hostile text must reach the workbook"

"""The annual thematic report of a unit as a Word document in Vietnamese administrative layout
(Nghị định 30/2020/NĐ-CP): header block, number, place and date, title, sections I–III with the
figures, and a signature block. Times New Roman throughout."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from io import BytesIO

from docx import Document
from docx.document import Document as DocumentObject
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml.ns import qn
from docx.oxml.xmlchemy import BaseOxmlElement
from docx.shared import Mm, Pt
from docx.table import Table, _Cell
from docx.text.paragraph import Paragraph
from pydantic import BaseModel, Field

from lhpn_shared.contracts.plans import Plan, TargetRule
from lhpn_shared.contracts.units import Unit

from ..domain.compliance import ComplianceResult, TargetCompliance
from ..domain.indicators import IndicatorsResult
from ..domain.rates import ReportingRates
from .labels import LEVELS_VI, kind_label, measure_label, vi_day, vi_number, vi_percent

FONT = "Times New Roman"


class ReportHeading(BaseModel):
    """Who issues the report, where and when, and who signs it."""

    issuer_name: str = Field(description="e.g. Hội LHPN tỉnh Phú Yên")
    body: str = Field(default="Ban Thường vụ", description="the issuing body within the union")
    number: str = Field(default="…/BC-BTV", description="shown after 'Số: '")
    place: str = Field(description="e.g. Phú Yên")
    dated_on: date
    subject: str = Field(description="the line under BÁO CÁO")
    basis: str = Field(description="what the report answers, e.g. Thực hiện Kế hoạch số …")
    signer_title: str = "Chủ tịch"
    signer_name: str = ""
    recipients: list[str] = Field(default_factory=lambda: ["Như trên", "Lưu: VT"])


def heading_for(unit: Unit, plan: Plan, dated_on: date) -> ReportHeading:
    """Default heading for the report of `unit` on `plan`: Hội LHPN <unit>, Ban Thường vụ."""
    name = unit.name
    place = name[len(unit.kind) + 1 :] if name.lower().startswith(unit.kind.lower() + " ") else name
    about = plan.title.removeprefix("Kế hoạch ").removeprefix("kế hoạch ")
    issued = f" ngày {plan.issued_on:%d/%m/%Y}" if plan.issued_on else ""
    return ReportHeading(
        issuer_name=f"Hội LHPN {name[:1].lower()}{name[1:]}",
        place=place,
        dated_on=dated_on,
        subject=f"Kết quả {about}",
        basis=f"Thực hiện Kế hoạch số {plan.number}{issued} về {about}",
    )


def thematic_report_docx(
    heading: ReportHeading,
    compliance: ComplianceResult,
    rates: Sequence[ReportingRates],
    indicators: IndicatorsResult,
) -> bytes:
    """The report: I. targets (figures, and the units behind on each counted per child unit;
    compute `compliance` with `list_limit=1` so the unit's own status is known), II. reporting
    rates, III. indicator totals recorded and declared."""
    document = Document()
    _page_and_font(document)
    _header_block(document, heading)
    _paragraph(document, "BÁO CÁO", bold=True, align=WD_ALIGN_PARAGRAPH.CENTER, before=12)
    _paragraph(document, heading.subject, bold=True, align=WD_ALIGN_PARAGRAPH.CENTER, after=12)
    _paragraph(
        document,
        f"{heading.basis}, {heading.body} {heading.issuer_name} báo cáo kết quả thực hiện "
        f"tính đến {vi_day(compliance.as_of_on)} như sau:",
        indent=True,
    )
    _targets_section(document, compliance)
    _rates_section(document, rates)
    _indicators_section(document, indicators)
    _paragraph(
        document,
        f"Trên đây là báo cáo {heading.subject[:1].lower()}{heading.subject[1:]} của "
        f"{heading.body} {heading.issuer_name}./.",
        indent=True,
        before=6,
    )
    _signature_block(document, heading)
    out = BytesIO()
    document.save(out)
    return out.getvalue()


# --- sections ---------------------------------------------------------------------------------


def _targets_section(document: DocumentObject, result: ComplianceResult) -> None:
    _paragraph(document, "I. KẾT QUẢ THỰC HIỆN CÁC CHỈ TIÊU", bold=True, before=6)
    for number, target in enumerate(result.targets, start=1):
        _paragraph(document, f"{number}. {target.title}: {_target_sentence(target)}", indent=True)
    if result.targets and any(t.rule is TargetRule.each_ended_half_year for t in result.targets):
        ended = ", ".join(result.ended_half_years) or "chưa có nửa năm nào kết thúc"
        _paragraph(
            document,
            f"Chỉ tiêu làm việc định kỳ được tính theo các nửa năm đã kết thúc ({ended}).",
            italic=True,
            indent=True,
        )
    _paragraph(document, "Bảng 1. Kết quả các chỉ tiêu và đơn vị chưa đạt", italic=True, before=6)
    _table(
        document,
        [
            "STT",
            "Chỉ tiêu",
            "Số đơn vị thuộc phạm vi",
            "Số đơn vị đạt",
            "Tỷ lệ đạt",
            "Số đơn vị chưa đạt, theo đơn vị trực thuộc",
        ],
        [
            [
                str(number),
                f"{t.code}. {t.title}",
                vi_number(t.in_scope),
                vi_number(t.met),
                vi_percent(t.percent),
                _units_behind(t, result.unit.unit_id),
            ]
            for number, t in enumerate(result.targets, start=1)
        ],
        widths=[10, 52, 20, 18, 18, 47],
        centered={0, 2, 3, 4},
    )


def _target_sentence(target: TargetCompliance) -> str:
    if not target.in_scope:
        return "không có đơn vị thuộc phạm vi."
    verdict = "đạt mục tiêu" if target.goal_reached else "chưa đạt mục tiêu"
    return (
        f"{vi_number(target.met)}/{vi_number(target.in_scope)} đơn vị đạt "
        f"({vi_percent(target.percent)}, mục tiêu {vi_percent(target.goal_percent)}), {verdict}."
    )


def _units_behind(target: TargetCompliance, unit_id: str) -> str:
    """The units behind, counted per child unit (`Huyện A: 3; Huyện B: 1`), the unit itself
    first; a child that is a single unit (a commune) is named. A line per child, not a page of
    names per target: the workbook lists them all."""
    if target.met >= target.in_scope:
        return "Không"
    parts = []
    if target.not_met and target.not_met[0].unit_id == unit_id:
        parts.append(LEVELS_VI[target.not_met[0].level].lower())  # the unit's own union
    for child in target.children:
        behind = child.in_scope - child.met
        if not behind:
            continue
        if child.in_scope == 1 and behind == 1:
            parts.append(child.name)
        else:
            parts.append(f"{child.name}: {vi_number(behind)}")
    return "; ".join(parts)


def _rates_section(document: DocumentObject, rates: Sequence[ReportingRates]) -> None:
    _paragraph(document, "II. TÌNH HÌNH THỰC HIỆN CHẾ ĐỘ BÁO CÁO", bold=True, before=6)
    if not rates:
        _paragraph(document, "Chưa có kỳ báo cáo nào đến hạn.", indent=True)
        return
    expected = sum(r.expected for r in rates)
    received = sum(r.received for r in rates)
    on_time = sum(r.on_time for r in rates)
    overall = 100 * received / expected if expected else None
    overall_on_time = 100 * on_time / expected if expected else None
    _paragraph(
        document,
        f"Tổng số lượt báo cáo phải gửi: {vi_number(expected)}; đã nhận: {vi_number(received)} "
        f"({vi_percent(overall and round(overall, 2))}); đúng hạn: {vi_number(on_time)} "
        f"({vi_percent(overall_on_time and round(overall_on_time, 2))}).",
        indent=True,
    )
    _paragraph(document, "Bảng 2. Tỷ lệ báo cáo theo loại và kỳ báo cáo", italic=True, before=6)
    _table(
        document,
        [
            "STT",
            "Loại báo cáo",
            "Kỳ",
            "Phải báo cáo",
            "Đã nhận",
            "Đúng hạn",
            "Tỷ lệ báo cáo",
            "Tỷ lệ đúng hạn",
        ],
        [
            [
                str(number),
                r.title,
                r.period,
                vi_number(r.expected),
                vi_number(r.received),
                vi_number(r.on_time),
                vi_percent(r.reporting_rate),
                vi_percent(r.on_time_rate),
            ]
            for number, r in enumerate(rates, start=1)
        ],
        widths=[10, 55, 17, 18, 16, 16, 17, 16],
        centered={0, 2, 3, 4, 5, 6, 7},
    )


def _indicators_section(document: DocumentObject, result: IndicatorsResult) -> None:
    _paragraph(document, "III. SỐ LIỆU HOẠT ĐỘNG", bold=True, before=6)
    _paragraph(
        document,
        f"Số liệu kỳ {result.period} (từ ngày {result.start_on:%d/%m/%Y} đến ngày "
        f"{result.end_on:%d/%m/%Y}), tổng hợp từ các hoạt động đã ghi nhận và từ "
        f"{vi_number(result.reports)} báo cáo của các đơn vị.",
        indent=True,
    )
    rows = [r for r in result.rows if r.recorded or r.declared]
    if not rows:
        _paragraph(document, "Chưa có số liệu trong kỳ.", indent=True)
        return
    if result.differing:
        _paragraph(
            document,
            f"Có {vi_number(result.differing)} chỉ số mà số liệu báo cáo khác số liệu ghi nhận "
            "(đánh dấu * trong bảng).",
            indent=True,
        )
    _paragraph(document, "Bảng 3. Số liệu hoạt động ghi nhận và báo cáo", italic=True, before=6)
    _table(
        document,
        ["Loại hoạt động", "Chỉ số", "Theo ghi nhận", "Theo báo cáo", "Chênh lệch"],
        [
            [
                kind_label(r.kind),
                measure_label(r.kind, r.measure),
                "" if r.recorded is None else vi_number(r.recorded),
                "" if r.declared is None else vi_number(r.declared),
                ""
                if r.difference is None
                else f"{r.difference:+,}".replace(",", ".") + (" *" if r.differs else ""),
            ]
            for r in rows
        ],
        widths=[60, 50, 23, 23, 24],
        centered={2, 3, 4},
    )


# --- layout -----------------------------------------------------------------------------------


def _page_and_font(document: DocumentObject) -> None:
    section = document.sections[0]
    section.page_width, section.page_height = Mm(210), Mm(297)
    section.top_margin, section.bottom_margin = Mm(20), Mm(20)
    section.left_margin, section.right_margin = Mm(30), Mm(15)
    styles = document.styles.element
    defaults = styles.find(qn("w:docDefaults"))
    if defaults is not None:  # drop the theme fonts (Calibri) the template defaults to
        for fonts in defaults.iter(qn("w:rFonts")):
            fonts.attrib.clear()
            _set_fonts(fonts)
    normal = document.styles["Normal"]
    normal.font.name = FONT
    normal.font.size = Pt(14)
    _set_fonts(normal.element.get_or_add_rPr().get_or_add_rFonts())
    paragraph_format = normal.paragraph_format
    paragraph_format.space_before = paragraph_format.space_after = Pt(0)
    paragraph_format.line_spacing = 1.15


def _set_fonts(fonts: BaseOxmlElement) -> None:
    for attribute in ("ascii", "hAnsi", "eastAsia", "cs"):
        fonts.set(qn(f"w:{attribute}"), FONT)


def _paragraph(
    container: DocumentObject | _Cell,
    text: str,
    *,
    bold: bool = False,
    italic: bool = False,
    size: float | None = None,
    align: WD_ALIGN_PARAGRAPH | None = WD_ALIGN_PARAGRAPH.JUSTIFY,
    indent: bool = False,
    before: float = 0,
    after: float = 3,
) -> Paragraph:
    if isinstance(container, _Cell) and len(container.paragraphs) == 1 and not container.text:
        paragraph = container.paragraphs[0]  # a new cell already holds one empty paragraph
    else:
        paragraph = container.add_paragraph()
    run = paragraph.add_run(text)
    run.bold, run.italic = bold, italic
    if size is not None:
        run.font.size = Pt(size)
    paragraph.alignment = align
    paragraph.paragraph_format.space_before = Pt(before)
    paragraph.paragraph_format.space_after = Pt(after)
    if indent:
        paragraph.paragraph_format.first_line_indent = Mm(10)
    return paragraph


def _table(
    document: DocumentObject,
    headers: list[str],
    rows: list[list[str]],
    *,
    widths: list[int],
    centered: set[int],
) -> Table:
    """A bordered table in 12 pt with a bold header; `widths` are relative, `centered` are the
    indexes of the columns centred (numbers)."""
    table = document.add_table(rows=1, cols=len(headers))
    table.style = document.styles["Table Grid"]
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    for cell, text in zip(table.rows[0].cells, headers, strict=True):
        _paragraph(cell, text, bold=True, size=12, align=WD_ALIGN_PARAGRAPH.CENTER, after=0)
    for values in rows:
        cells = table.add_row().cells
        for index, (cell, text) in enumerate(zip(cells, values, strict=True)):
            align = WD_ALIGN_PARAGRAPH.CENTER if index in centered else WD_ALIGN_PARAGRAPH.LEFT
            _paragraph(cell, text, size=12, align=align, after=0)
    total = sum(widths)
    usable = 165  # A4 minus the 30 mm and 15 mm margins
    for row in table.rows:
        for cell, width in zip(row.cells, widths, strict=True):
            cell.width = Mm(width * usable / total)
    return table


def _two_columns(document: DocumentObject, left_mm: float, right_mm: float) -> tuple[_Cell, _Cell]:
    """A borderless two-column table, as the header and signature blocks are laid out."""
    table = document.add_table(rows=1, cols=2)
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    left, right = table.rows[0].cells
    left.width, right.width = Mm(left_mm), Mm(right_mm)
    return left, right


def _header_block(document: DocumentObject, heading: ReportHeading) -> None:
    center = WD_ALIGN_PARAGRAPH.CENTER
    left, right = _two_columns(document, 70, 95)
    _paragraph(left, heading.issuer_name.upper(), size=13, align=center, after=0)
    _paragraph(left, heading.body.upper(), bold=True, size=13, align=center, after=0)
    _paragraph(left, "***", size=13, align=center, after=6)
    _paragraph(left, f"Số: {heading.number}", size=13, align=center, after=0)
    _paragraph(
        right, "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", bold=True, size=12, align=center, after=0
    )
    _paragraph(right, "Độc lập – Tự do – Hạnh phúc", bold=True, size=13, align=center, after=0)
    _paragraph(right, "–––––––––––––––––––", size=13, align=center, after=6)
    _paragraph(
        right,
        f"{heading.place}, {vi_day(heading.dated_on)}",
        italic=True,
        size=13,
        align=center,
        after=0,
    )


def _signature_block(document: DocumentObject, heading: ReportHeading) -> None:
    center = WD_ALIGN_PARAGRAPH.CENTER
    left, right = _two_columns(document, 80, 85)
    _paragraph(
        left,
        "Nơi nhận:",
        bold=True,
        italic=True,
        size=12,
        align=WD_ALIGN_PARAGRAPH.LEFT,
        before=12,
        after=0,
    )
    for index, recipient in enumerate(heading.recipients):
        end = "." if index == len(heading.recipients) - 1 else ";"
        _paragraph(left, f"- {recipient}{end}", size=11, align=WD_ALIGN_PARAGRAPH.LEFT, after=0)
    _paragraph(
        right, f"TM. {heading.body.upper()}", bold=True, size=14, align=center, before=12, after=0
    )
    _paragraph(right, heading.signer_title.upper(), bold=True, size=14, align=center, after=60)
    _paragraph(right, heading.signer_name, bold=True, size=14, align=center, after=0)

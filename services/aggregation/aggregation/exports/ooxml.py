"""A small writer of .xlsx files (Office Open XML spreadsheets) for the exports' plain tables.

Why not openpyxl: in its write-only mode it still spends about 8 µs per cell (a cell object,
its value checked and bound, an lxml element), 2.7 s of CPU for the country's compliance
workbook (57,000 rows of 6 cells); the tables here need none of what it offers beyond writing
values. This writer knows only what the exports use — text, numbers, dates, empty cells; a
bold header row with a fill, frozen and filterable; column widths; number formats; a fill per
row; the quote prefix — and writes each sheet's XML as text, one row at a time.

Text is always an inline string (`t="inlineStr"`), never a formula: nothing written here is ever
evaluated, and text beginning like a formula is also marked to be shown as typed (the quote
prefix of its style), as the exports promise (issue 9).
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import IO, Any
from xml.sax.saxutils import escape, quoteattr

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
"""Characters XML 1.0 cannot hold (a stored name or title might): left out."""
_EPOCH = date(1899, 12, 30)
"""Day 0 of Excel's date serial numbers (1900 date system, as written by Excel)."""
_BUILTIN_FORMATS = {"0%": 9, "0.00%": 10}
_FIRST_CUSTOM_FORMAT = 164


@dataclass(frozen=True)
class Column:
    header: str
    width: float
    number_format: str | None = None


@dataclass(frozen=True)
class _Style:
    number_format: str | None = None
    fill: str | None = None
    """RGB of a solid fill"""
    bold: bool = False
    wrap: bool = False
    quote: bool = False


@dataclass
class _Styles:
    """The cell formats used by a workbook, numbered in the order first asked for (0: none)."""

    styles: dict[_Style, int] = field(default_factory=lambda: {_Style(): 0})

    def index(self, style: _Style) -> int:
        found = self.styles.get(style)
        if found is None:
            found = self.styles[style] = len(self.styles)
        return found

    def xml(self) -> str:
        formats: dict[str, int] = {}
        fills = ["none", "gray125"]  # the two fills every styles part starts with
        fonts = [False, True]  # regular, bold
        xfs = []
        for style in self.styles:
            fmt = 0
            if style.number_format is not None:
                fmt = _BUILTIN_FORMATS.get(style.number_format) or formats.setdefault(
                    style.number_format, _FIRST_CUSTOM_FORMAT + len(formats)
                )
            fill = 0
            if style.fill is not None:
                if style.fill not in fills:
                    fills.append(style.fill)
                fill = fills.index(style.fill)
            attrs = (
                f'numFmtId="{fmt}" fontId="{fonts.index(style.bold)}" fillId="{fill}" '
                f'borderId="0" xfId="0"'
                + (' applyNumberFormat="1"' if fmt else "")
                + (' applyFont="1"' if style.bold else "")
                + (' applyFill="1"' if fill else "")
                + (' quotePrefix="1"' if style.quote else "")
            )
            if style.wrap:
                xfs.append(
                    f'<xf {attrs} applyAlignment="1">'
                    '<alignment vertical="center" wrapText="1"/></xf>'
                )
            else:
                xfs.append(f"<xf {attrs}/>")
        num_fmts = "".join(
            f"<numFmt numFmtId={quoteattr(str(n))} formatCode={quoteattr(code)}/>"
            for code, n in formats.items()
        )
        fill_xml = "".join(
            f'<fill><patternFill patternType="{f}"/></fill>'
            if f in ("none", "gray125")
            else f'<fill><patternFill patternType="solid"><fgColor rgb="FF{f}"/>'
            "</patternFill></fill>"
            for f in fills
        )
        return (
            _XML_HEAD
            + f'<styleSheet xmlns="{_MAIN}">'
            + (f'<numFmts count="{len(formats)}">{num_fmts}</numFmts>' if formats else "")
            + '<fonts count="2"><font><sz val="11"/><name val="Calibri"/></font>'
            '<font><b/><sz val="11"/><name val="Calibri"/></font></fonts>'
            f'<fills count="{len(fills)}">{fill_xml}</fills>'
            '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border>'
            "</borders>"
            '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/>'
            "</cellStyleXfs>"
            f'<cellXfs count="{len(xfs)}">{"".join(xfs)}</cellXfs>'
            '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/>'
            "</cellStyles></styleSheet>"
        )


def column_letter(index: int) -> str:
    """A, B, …, Z, AA, … of a 1-based column index."""
    letters = ""
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def text(value: str) -> str:
    return escape(_NOT_XML.sub("", value))


class Workbook:
    """Sheets added one after another (`add_sheet`), written to `out` by `close`'s end: each
    sheet goes to the zip archive as it is added, rows as they come."""

    def __init__(self, out: IO[bytes]) -> None:
        self.zip = zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1)
        self.styles = _Styles()
        self.titles: list[str] = []
        self.filters: list[str] = []
        """per sheet, the range of its filter ($A$1:$F$10)"""

    def add_sheet(
        self,
        title: str,
        columns: Sequence[Column],
        rows: Iterable[Sequence[Any]],
        *,
        row_count: int,
        fills: Iterable[str | None] | None = None,
        header_fill: str = "DDEBF7",
    ) -> None:
        """A sheet: a bold header row (frozen, with a filter over the table), then `rows`
        (`row_count` of them: the sheet's dimension is written first). `fills`: per row, the
        RGB of its fill or None."""
        self.titles.append(title)
        number = len(self.titles)
        letters = [column_letter(i) for i in range(1, len(columns) + 1)]
        last = f"{letters[-1]}{row_count + 1}"
        self.filters.append(f"$A$1:${letters[-1]}${row_count + 1}")
        header_style = self.styles.index(_Style(fill=header_fill, bold=True, wrap=True))
        with self.zip.open(f"xl/worksheets/sheet{number}.xml", "w") as sheet:
            cols = "".join(
                f'<col min="{i}" max="{i}" width="{c.width}" customWidth="1"/>'
                for i, c in enumerate(columns, start=1)
            )
            head = "".join(
                f'<c r="{letters[i]}1" s="{header_style}" t="inlineStr"><is><t>'
                f"{text(c.header)}</t></is></c>"
                for i, c in enumerate(columns)
            )
            sheet.write(
                (
                    _XML_HEAD + f'<worksheet xmlns="{_MAIN}" xmlns:r="{_REL}">'
                    f'<dimension ref="A1:{last}"/>'
                    '<sheetViews><sheetView workbookViewId="0">'
                    '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
                    '<selection pane="bottomLeft" activeCell="A2" sqref="A2"/>'
                    "</sheetView></sheetViews>"
                    '<sheetFormatPr defaultRowHeight="15"/>'
                    f"<cols>{cols}</cols><sheetData>"
                    f'<row r="1">{head}</row>'
                ).encode()
            )
            row_fills = iter(fills) if fills is not None else None
            formats = [c.number_format for c in columns]
            pending: list[str] = []
            written = 1
            for values in rows:
                written += 1
                fill = next(row_fills, None) if row_fills is not None else None
                pending.append(self._row(written, letters, formats, values, fill))
                if len(pending) >= 2000:
                    sheet.write("".join(pending).encode())
                    pending.clear()
            if written != row_count + 1:
                raise ValueError(f"sheet {title!r}: {written - 1} rows, {row_count} announced")
            pending.append(f'</sheetData><autoFilter ref="A1:{last}"/></worksheet>')
            sheet.write("".join(pending).encode())

    def _row(
        self,
        number: int,
        letters: Sequence[str],
        formats: Sequence[str | None],
        values: Sequence[Any],
        fill: str | None,
    ) -> str:
        if len(values) != len(letters):
            raise ValueError(f"row {number}: {len(values)} values for {len(letters)} columns")
        cells = []
        for letter, number_format, value in zip(letters, formats, values, strict=True):
            if value is None:
                if fill is not None:
                    style = self.styles.index(_Style(fill=fill))
                    cells.append(f'<c r="{letter}{number}" s="{style}"/>')
                continue
            if isinstance(value, str):
                quote = value.startswith(FORMULA_STARTS)
                style = self.styles.index(_Style(fill=fill, quote=quote)) if fill or quote else 0
                spaced = value[:1].isspace() or value[-1:].isspace()
                space = ' xml:space="preserve"' if spaced else ""
                cells.append(
                    f'<c r="{letter}{number}"{_s(style)} t="inlineStr"><is><t{space}>'
                    f"{text(value)}</t></is></c>"
                )
                continue
            if isinstance(value, bool):
                raise TypeError("booleans are not written: say it in words")
            if isinstance(value, datetime):
                raise TypeError("instants are written as text (their time zone said)")
            if isinstance(value, date):
                value = (value - _EPOCH).days
            elif not isinstance(value, int | float):
                raise TypeError(f"cannot write {type(value).__name__} to a cell")
            style = (
                self.styles.index(_Style(number_format=number_format, fill=fill))
                if number_format or fill
                else 0
            )
            cells.append(f'<c r="{letter}{number}"{_s(style)}><v>{value!r}</v></c>')
        return f'<row r="{number}">{"".join(cells)}</row>'

    def close(self) -> None:
        """The workbook's other parts: the sheets' list, the styles, the relationships."""
        sheets = "".join(
            f'<sheet name={quoteattr(_NOT_XML.sub("", t))} sheetId="{n}" r:id="rId{n}"/>'
            for n, t in enumerate(self.titles, start=1)
        )
        # the filters' ranges, named as Excel names them
        names = "".join(
            f'<definedName name="_xlnm._FilterDatabase" localSheetId="{n}" hidden="1">'
            + text("'" + _NOT_XML.sub("", t).replace("'", "''") + "'!" + ref)
            + "</definedName>"
            for n, (t, ref) in enumerate(zip(self.titles, self.filters, strict=True))
        )
        self.zip.writestr(
            "xl/workbook.xml",
            _XML_HEAD + f'<workbook xmlns="{_MAIN}" xmlns:r="{_REL}">'
            f"<bookViews><workbookView/></bookViews><sheets>{sheets}</sheets>"
            f"<definedNames>{names}</definedNames></workbook>",
        )
        n = len(self.titles)
        rels = "".join(
            f'<Relationship Id="rId{i}" Type="{_REL}/worksheet" Target="worksheets/sheet{i}.xml"/>'
            for i in range(1, n + 1)
        )
        rels += f'<Relationship Id="rId{n + 1}" Type="{_REL}/styles" Target="styles.xml"/>'
        self.zip.writestr(
            "xl/_rels/workbook.xml.rels",
            _XML_HEAD + f'<Relationships xmlns="{_PKG_REL}">{rels}</Relationships>',
        )
        self.zip.writestr("xl/styles.xml", self.styles.xml())
        self.zip.writestr(
            "_rels/.rels",
            _XML_HEAD + f'<Relationships xmlns="{_PKG_REL}"><Relationship Id="rId1" '
            f'Type="{_REL}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        )
        overrides = "".join(
            f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="{_SHEET_TYPE}"/>'
            for i in range(1, n + 1)
        )
        self.zip.writestr(
            "[Content_Types].xml",
            _XML_HEAD + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/'
            'content-types">'
            '<Default Extension="rels" ContentType="application/'
            'vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            f'<Override PartName="/xl/workbook.xml" ContentType="{_BOOK_TYPE}"/>'
            f'<Override PartName="/xl/styles.xml" ContentType="{_STYLES_TYPE}"/>'
            f"{overrides}</Types>",
        )
        self.zip.close()


def _s(style: int) -> str:
    return f' s="{style}"' if style else ""


_XML_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_OFFICE = "application/vnd.openxmlformats-officedocument.spreadsheetml"
_BOOK_TYPE = f"{_OFFICE}.sheet.main+xml"
_SHEET_TYPE = f"{_OFFICE}.worksheet+xml"
_STYLES_TYPE = f"{_OFFICE}.styles+xml"

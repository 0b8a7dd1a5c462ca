"""The reminder-policy form, pure: reminders' policy (offsets as ISO 8601 durations) ↔ what staff
think in (so many days before or after the due instant, for the unit or its parent).

Sections: `reports.steps` (every report type without steps of its own), one per report type
(`reports.by_report_type.<type>`, used only when ticked), `cases.steps`. Field names are the
section, the row and the part (`reports.steps.0.days`), so a 422 from reminders located at
`reports.steps.0.offset` lands next to row 0's days.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import TypeAdapter

from .problems import FieldErrors

BLANK_ROWS = 2
"""empty rows under each section's steps, to add a step"""
DAY = 86_400
DURATION = TypeAdapter(timedelta)
REPORTS, CASES = "reports.steps", "cases.steps"
TYPE_PREFIX = "reports.by_report_type."
MAX_ROWS = 20
AUDIENCES = {"unit": "Đơn vị phải làm", "parent": "Đơn vị cấp trên"}


@dataclass
class Row:
    step: str = ""
    days: str = ""
    when: str = "before"
    """before | after"""
    audience: str = "unit"


@dataclass
class Section:
    key: str
    title: str
    rows: list[Row]
    own: bool = True
    """a report type's section: whether it has steps of its own (else the default applies)"""
    optional: bool = False
    steps: list[dict[str, Any]] = field(default_factory=list)
    """the stored steps (for the read-only table)"""


def offset_of(text: str) -> timedelta:
    return DURATION.validate_python(text)


def days_text(seconds: float) -> str:
    """86400 → "1"; 43200 → "0,5" (the form's decimal comma)."""
    days = Decimal(str(seconds)) / DAY
    text = f"{days.normalize():f}"
    return text.replace(".", ",")


def describe(offset: str) -> str:
    """ "-P3D" → "3 ngày trước hạn"; "PT0S" → "đúng lúc đến hạn"."""
    seconds = offset_of(offset).total_seconds()
    if seconds == 0:
        return "đúng lúc đến hạn"
    return f"{days_text(abs(seconds))} ngày {'trước' if seconds < 0 else 'sau'} hạn"


def rows_of(steps: list[dict[str, Any]]) -> list[Row]:
    rows = []
    for s in steps:
        seconds = offset_of(s["offset"]).total_seconds()
        rows.append(
            Row(
                step=s["step"],
                days=days_text(abs(seconds)),
                when="before" if seconds < 0 else "after",
                audience=s.get("audience", "unit"),
            )
        )
    return rows + [Row() for _ in range(BLANK_ROWS)]


def sections_of(policy: dict[str, Any], report_types: dict[str, str]) -> list[Section]:
    """The form's sections for a stored policy; `report_types`: code → title (from the plans;
    a type the policy names but no plan has is shown too)."""
    default = policy["reports"]["steps"]
    own = policy["reports"].get("by_report_type") or {}
    sections = [Section(REPORTS, "Mặc định cho mọi loại báo cáo", rows_of(default), steps=default)]
    for code in sorted(set(report_types) | set(own)):
        title = report_types.get(code) or code
        steps = own.get(code, default)
        sections.append(
            Section(
                TYPE_PREFIX + code,
                f"{title} ({code})",
                rows_of(steps),
                own=code in own,
                optional=True,
                steps=steps,
            )
        )
    cases = policy["cases"]["steps"]
    sections.append(Section(CASES, "Hạn xử lý vụ việc pháp lý", rows_of(cases), steps=cases))
    return sections


_DAYS = re.compile(r"^\d{1,3}([.,]\d{1,3})?$")


def _offset(days: str, when: str) -> str | None:
    """ "3", "before" → "-P3D"; "0,5", "after" → "PT43200S"; None if `days` is not a number."""
    text = days.strip()
    if not _DAYS.fullmatch(text):
        return None
    try:
        value = Decimal(text.replace(",", "."))
    except InvalidOperation:
        return None
    sign = "-" if when == "before" and value != 0 else ""
    if value == value.to_integral_value():
        return f"{sign}P{int(value)}D"
    return f"{sign}PT{int(value * DAY)}S"


def _rows_from_form(form: dict[str, str], key: str) -> list[Row]:
    rows = []
    for i in range(MAX_ROWS):
        prefix = f"{key}.{i}."
        if prefix + "step" not in form:
            break
        rows.append(
            Row(
                step=form.get(prefix + "step", "").strip(),
                days=form.get(prefix + "days", "").strip(),
                when=form.get(prefix + "when", "before"),
                audience=form.get(prefix + "audience", "unit"),
            )
        )
    return rows


def _steps(rows: list[Row], key: str, errors: FieldErrors) -> list[dict[str, Any]]:
    """The filled rows as reminders' steps; a row's problems keyed by its position among the
    steps sent (the index reminders' 422 will use), its days at `offset`."""
    steps: list[dict[str, Any]] = []
    for row in rows:
        if not row.step and not row.days:
            continue  # an empty row
        where = f"{key}.{len(steps)}"
        offset = _offset(row.days, row.when) if row.days else None
        if not row.step:
            errors[f"{where}.step"] = "Chưa nhập tên bước."
        if offset is None:
            errors[f"{where}.offset"] = (
                "Chưa nhập số ngày."
                if not row.days
                else "Số ngày phải là một số, ví dụ 3 hoặc 0,5."
            )
        audience = row.audience if row.audience in AUDIENCES else "unit"
        steps.append({"step": row.step, "offset": offset or "PT0S", "audience": audience})
    return steps


def report_types_of(form: dict[str, str]) -> list[str]:
    """The report types the form had a section for (each carries `<key>.title`)."""
    return sorted(
        k[len(TYPE_PREFIX) : -len(".title")]
        for k in form
        if k.startswith(TYPE_PREFIX) and k.endswith(".title")
    )


def body_from_form(
    form: dict[str, str], report_types: list[str]
) -> tuple[dict[str, Any], list[Section], FieldErrors]:
    """(reminders' PUT body, the sections as typed — to show again —, the problems found before
    sending). A report type's section counts only when its box `<key>.own` is ticked. The rows'
    positions are renumbered as sent, so the sections shown carry the filled rows first."""
    errors: FieldErrors = {}
    sections: list[Section] = []

    def section(key: str, title: str, optional: bool = False) -> list[dict[str, Any]]:
        rows = _rows_from_form(form, key)
        own = not optional or form.get(key + ".own") == "yes"
        steps = _steps(rows, key, errors) if own else []
        filled = [r for r in rows if r.step or r.days]
        shown = filled + [Row() for _ in range(BLANK_ROWS)]
        sections.append(Section(key, title, shown, own=own, optional=optional))
        return steps

    default = section(REPORTS, "Mặc định cho mọi loại báo cáo")
    by_type: dict[str, list[dict[str, Any]]] = {}
    for code in report_types:
        key = TYPE_PREFIX + code
        steps = section(key, form.get(key + ".title", code), optional=True)
        if form.get(key + ".own") == "yes":
            by_type[code] = steps
    cases = section(CASES, "Hạn xử lý vụ việc pháp lý")
    revision_text = form.get("revision", "0")
    body = {
        "revision": int(revision_text) if revision_text.isdigit() else 0,
        "reports": {"steps": default, "by_report_type": by_type},
        "cases": {"steps": cases},
    }
    return body, sections, errors

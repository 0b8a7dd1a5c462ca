"""Vietnamese subject and body of a planned message, from the Jinja2 templates.

Dates follow Vietnamese administrative usage (Nghị định 30/2020/NĐ-CP: a zero before days under
10 and before months 1 and 2), shown in Asia/Ho_Chi_Minh time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from lhpn_shared.clock import LOCAL_TZ
from lhpn_shared.contracts.cases import CaseKind
from lhpn_shared.contracts.plans import Plan, last_day_to_submit
from lhpn_shared.contracts.units import UnitTree
from lhpn_shared.periods import BadPeriod, period_bounds

from ..domain.messages import CaseReminder, ParentDigest, PlannedMessage, ReportReminder

CASE_KIND_LABELS: dict[CaseKind, str] = {
    CaseKind.consultation: "tư vấn pháp luật",
    CaseKind.legal_aid: "trợ giúp pháp lý",
    CaseKind.complaint: "khiếu nại",
    CaseKind.denunciation: "tố cáo",
    CaseKind.petition: "kiến nghị, phản ánh",
    CaseKind.mediation: "hòa giải ở cơ sở",
}
DEADLINE_LABELS: dict[str, str] = {
    "accept": "thụ lý",
    "resolve": "giải quyết",
    "handle_letter": "xử lý đơn thư",
}
ROMAN_QUARTERS = {1: "I", 2: "II", 3: "III", 4: "IV"}


def build_environment() -> Environment:
    """Build once at start-up and pass down (templates are read lazily, then cached)."""
    return Environment(
        loader=PackageLoader("reminders", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html", "htm", "xml")),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


@dataclass(frozen=True)
class RenderContext:
    env: Environment
    portal_url: str
    """Base address of the portal, e.g. https://lhpn.example.vn (no trailing slash needed)."""
    units: UnitTree
    report_titles: Mapping[tuple[str, str], str]
    """(plan_id, report_type) → the schedule's title; see `report_titles`."""
    as_of: datetime
    """The sweep's instant: "how late" is counted up to it."""


def report_titles(plans: Iterable[Plan]) -> dict[tuple[str, str], str]:
    return {(p.plan_id, s.report_type): s.title for p in plans for s in p.report_schedules}


def render_message(planned: PlannedMessage, context: RenderContext) -> tuple[str, str]:
    """(subject, body) in Vietnamese, plain text."""
    if isinstance(planned, ReportReminder):
        name, variables = "report_reminder", _report_reminder_vars(planned, context)
    elif isinstance(planned, ParentDigest):
        name, variables = "parent_digest", _digest_vars(planned, context)
    else:
        name, variables = "case_deadline", _case_vars(planned, context)
    variables["recipient_name"] = union_name(context.units, planned.recipient_unit_id)
    subject = context.env.get_template(f"{name}.subject.txt").render(variables)
    body = context.env.get_template(f"{name}.body.txt").render(variables)
    return " ".join(subject.split()), body


def _report_reminder_vars(m: ReportReminder, ctx: RenderContext) -> dict[str, Any]:
    if ctx.as_of >= m.due_at:
        state = "overdue"
    elif ctx.as_of.astimezone(LOCAL_TZ).date() == last_day_to_submit(m.due_at):
        state = "last_day"
    else:
        state = "upcoming"
    query = {"unit_id": m.unit_id, "report_type": m.report_type, "period": m.period}
    return {
        **_report_vars(m.plan_id, m.report_type, m.period, m.due_at, ctx),
        "state": state,
        "days_late": days_late(m.due_at, ctx.as_of),
        "link": f"{ctx.portal_url.rstrip('/')}/reports/new?{urlencode(query)}",
    }


def _digest_vars(m: ParentDigest, ctx: RenderContext) -> dict[str, Any]:
    late_units = []
    for unit_id in m.late_unit_ids:
        unit = ctx.units.get(unit_id)
        late_units.append({"unit_id": unit_id, "name": unit.name if unit else unit_id})
    query = {"unit_id": m.recipient_unit_id, "report_type": m.report_type, "period": m.period}
    return {
        **_report_vars(m.plan_id, m.report_type, m.period, m.due_at, ctx),
        "late_units": late_units,
        "days_late": days_late(m.due_at, ctx.as_of),
        "as_of_day": format_short_date(ctx.as_of.astimezone(LOCAL_TZ).date()),
        "link": f"{ctx.portal_url.rstrip('/')}/reporting-rates?{urlencode(query)}",
    }


def _report_vars(
    plan_id: str, report_type: str, period: str, due_at: datetime, ctx: RenderContext
) -> dict[str, Any]:
    return {
        "report_title": ctx.report_titles.get((plan_id, report_type), report_type),
        "period_label": format_period(period),
        "deadline": format_deadline(due_at),
        "last_day": format_last_day(due_at),
    }


def _case_vars(m: CaseReminder, ctx: RenderContext) -> dict[str, Any]:
    return {
        "case_id": str(m.case_id),
        "case_kind_label": CASE_KIND_LABELS.get(m.case_kind, m.case_kind.value),
        "deadline_label": DEADLINE_LABELS.get(m.deadline, m.deadline),
        "deadline": format_deadline(m.due_at),
        "owner_name": union_name(ctx.units, m.unit_id),
        "escalated": m.recipient_unit_id != m.unit_id,
        "overdue": ctx.as_of >= m.due_at,
        "days_late": days_late(m.due_at, ctx.as_of),
        "link": f"{ctx.portal_url.rstrip('/')}/cases/{m.case_id}",
    }


def format_period(key: str) -> str:
    """`2021-03` → "tháng 3/2021", `2021-H1` → "6 tháng đầu năm 2021", `2021` → "năm 2021"."""
    try:
        start, end = period_bounds(key)
    except BadPeriod:
        return key
    if start.month == 1 and end.month == 12:
        return f"năm {start.year}"
    if end.month - start.month == 5:
        half = "đầu" if start.month == 1 else "cuối"
        return f"6 tháng {half} năm {start.year}"
    if end.month - start.month == 2:
        return f"quý {ROMAN_QUARTERS[(start.month + 2) // 3]}/{start.year}"
    return f"tháng {start.month}/{start.year}"


def format_long_date(day: date) -> str:
    """E.g. "ngày 30 tháng 10 năm 2021", "ngày 05 tháng 01 năm 2021"."""
    month = f"{day.month:02d}" if day.month <= 2 else str(day.month)
    return f"ngày {day.day:02d} tháng {month} năm {day.year}"


def format_short_date(day: date) -> str:
    return f"{day.day:02d}/{day.month:02d}/{day.year}"


def format_deadline(due_at: datetime) -> str:
    """E.g. "trước 00 giờ 00 ngày 30 tháng 10 năm 2021" (local time)."""
    local = due_at.astimezone(LOCAL_TZ)
    return f"trước {local.hour:02d} giờ {local.minute:02d} {format_long_date(local.date())}"


def format_last_day(due_at: datetime) -> str | None:
    """E.g. "29/10/2021" when the deadline is a local midnight; else None (no whole day)."""
    local = due_at.astimezone(LOCAL_TZ)
    if (local.hour, local.minute, local.second, local.microsecond) != (0, 0, 0, 0):
        return None
    return format_short_date(last_day_to_submit(due_at))


def days_late(due_at: datetime, as_of: datetime) -> int:
    """Whole days elapsed since the due instant (0 before it or within its first day)."""
    return max(0, (as_of - due_at) // timedelta(days=1))


def union_name(units: UnitTree, unit_id: str) -> str:
    """E.g. "Hội LHPN huyện Sơn Hòa" for the unit "Huyện Sơn Hòa" of kind "huyện"."""
    unit = units.get(unit_id)
    if unit is None:
        return f"Hội LHPN đơn vị {unit_id}"
    name = unit.name
    if unit.kind and name.lower().startswith(unit.kind.lower()):
        name = unit.kind.lower() + name[len(unit.kind) :]
    return f"Hội LHPN {name}"

"""Intake's rules, pure: what makes an activity or a report acceptable (SPEC §4–§5).

No I/O and no clock: the caller passes the unit, the plan and today's date. Each rule names
the field it refuses and says why in words a union staff member understands.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from lhpn_shared.contracts.activities import METRIC_BOUNDS, METRICS, ActivityFields
from lhpn_shared.contracts.plans import Plan, ReportSchedule, SchedulePeriod
from lhpn_shared.contracts.units import Unit, UnitTree

Problem = tuple[tuple[str | int, ...], str]


def activity_problems(fields: ActivityFields, unit: Unit | None, today: date) -> list[Problem]:
    """Every reason to refuse this activity; empty when it is acceptable."""
    problems: list[Problem] = []
    if unit is None:
        problems.append((("unit_id",), f"Không có đơn vị mã '{fields.unit_id}'."))
    allowed = METRICS[fields.kind]
    for name, value in fields.metrics.items():
        if name not in allowed:
            problems.append(
                (
                    ("metrics", name),
                    f"Chỉ số '{name}' không thuộc loại hoạt động '{fields.kind.value}' "
                    f"(được dùng: {', '.join(allowed)}).",
                )
            )
        elif value < 0:
            problems.append((("metrics", name), f"Chỉ số '{name}' không được âm ({value})."))
    for part, whole in METRIC_BOUNDS.get(fields.kind, ()):
        p, w = fields.metrics.get(part), fields.metrics.get(whole)
        if p is not None and p > (w or 0) and p >= 0:
            problems.append(
                (("metrics", part), f"'{part}' ({p}) không được lớn hơn '{whole}' ({w or 0}).")
            )
    if fields.occurred_on > today:
        problems.append(
            (("occurred_on",), f"Ngày diễn ra {fields.occurred_on:%d/%m/%Y} ở tương lai.")
        )
    elif unit is not None and not unit.valid_on(fields.occurred_on):
        problems.append(
            (
                ("occurred_on",),
                f"Ngày {fields.occurred_on:%d/%m/%Y} nằm ngoài thời gian tồn tại của đơn vị "
                f"{unit.name} ({_validity(unit)}).",
            )
        )
    return problems


def _validity(unit: Unit) -> str:
    start = f"{unit.valid_from:%d/%m/%Y}" if unit.valid_from else "…"
    end = f"{unit.valid_to:%d/%m/%Y}" if unit.valid_to else "nay"
    return f"{start} – {end}"


@dataclass(frozen=True)
class Expectation:
    plan: Plan
    schedule: ReportSchedule
    period: SchedulePeriod
    due_at: datetime


def find_schedule(
    plans: list[Plan], report_type: str, period: str
) -> tuple[Plan, ReportSchedule, SchedulePeriod] | None:
    for plan in plans:
        schedule = plan.schedule(report_type)
        if schedule is not None and (p := schedule.period(period)) is not None:
            return plan, schedule, p
    return None


def report_expectation(
    plans: list[Plan], tree: UnitTree, unit_id: str, report_type: str, period: str
) -> Expectation | list[Problem]:
    """The schedule entry a report answers, or why no schedule expects it. Only the plans
    that cover the unit count (those of its province, or of the province continuing it)."""
    unit = tree.get(unit_id)
    if unit is None:
        return [(("unit_id",), f"Không có đơn vị mã '{unit_id}'.")]
    plans = [p for p in plans if p.covers(unit_id, tree)]
    known_types = {s.report_type for p in plans for s in p.report_schedules}
    if report_type not in known_types:
        return [
            (
                ("report_type",),
                f"Không có loại báo cáo '{report_type}' trong kế hoạch nào "
                f"(có: {', '.join(sorted(known_types)) or 'không có'}).",
            )
        ]
    found = find_schedule(plans, report_type, period)
    if found is None:
        return [(("period",), f"Kỳ '{period}' không có trong lịch báo cáo '{report_type}'.")]
    plan, schedule, p = found
    if unit.level not in schedule.levels:
        return [
            (
                ("unit_id",),
                f"Đơn vị {unit.name} (cấp {unit.level.value}) không phải nộp báo cáo "
                f"'{schedule.title}'.",
            )
        ]
    if not schedule.expects(unit, p):
        return [
            (
                ("unit_id",),
                f"Đơn vị {unit.name} không phải nộp báo cáo kỳ {period}: đơn vị không tồn tại "
                f"vào hạn nộp {p.reporting_day(unit.level):%d/%m/%Y} ({_validity(unit)}).",
            )
        ]
    return Expectation(plan=plan, schedule=schedule, period=p, due_at=p.due_at[unit.level])


def indicator_problems(schedule: ReportSchedule, indicators: dict[str, int]) -> list[Problem]:
    problems: list[Problem] = []
    allowed = set(schedule.indicators)
    for code, value in indicators.items():
        if code not in allowed:
            problems.append(
                (("indicators", code), f"Chỉ tiêu '{code}' không có trong mẫu báo cáo này.")
            )
        elif value < 0:
            problems.append((("indicators", code), f"Chỉ tiêu '{code}' không được âm ({value})."))
    return problems


def is_on_time(received_at: datetime, due_at: datetime) -> bool:
    """On time means received strictly before the due instant (SPEC §3)."""
    return received_at < due_at

"""What an administrator may store as the reminder policy: the checks, in Vietnamese.

The API takes the policy as plain lists of steps (offsets as ISO 8601 durations) and this module
turns them into the domain's `ReminderPolicy` / `CaseReminderPolicy`, or into the problems that
name each faulty field (the 422 the portal shows next to it).
"""

from __future__ import annotations

import re
from datetime import timedelta

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from .case_deadlines import CaseReminderPolicy
from .policy import Audience, ReminderPolicy, ReminderStep

MAX_OFFSET = timedelta(days=366)
"""A step more than a year away from its due instant is a typing mistake."""
MAX_STEPS = 10
MAX_REPORT_TYPES = 30
STEP_NAME = re.compile(r"^[a-z0-9_]{1,40}$")
REPORT_TYPE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")

OFFSET_PATTERN = r"^-?P(\d+W)?(\d+D)?(T(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$"
"""ISO 8601 durations in weeks, days, hours, minutes, seconds, with a sign (JSON Schema's
`duration` format has none; these offsets are negative before the due instant)"""
DURATION = TypeAdapter(timedelta)

Loc = tuple[str | int, ...]
Problems = list[tuple[Loc, str]]


class PolicyStep(BaseModel):
    step: str = Field(description="a name made of a-z, 0-9 and _, e.g. before_3d")
    offset: str = Field(
        pattern=OFFSET_PATTERN,
        description="ISO 8601 duration relative to the due instant; negative is before, "
        "e.g. -P3D, P1D, PT0S",
    )
    audience: Audience = Audience.unit


class ReportSteps(BaseModel):
    steps: list[PolicyStep]
    by_report_type: dict[str, list[PolicyStep]] = Field(default_factory=dict)


class CaseSteps(BaseModel):
    steps: list[PolicyStep]


def _check_steps(steps: list[PolicyStep], loc: Loc, problems: Problems) -> tuple[ReminderStep, ...]:
    if len(steps) > MAX_STEPS:
        problems.append((loc, f"Tối đa {MAX_STEPS} bước nhắc."))
    seen: set[str] = set()
    out: list[ReminderStep] = []
    for i, s in enumerate(steps):
        bad = False
        if not STEP_NAME.fullmatch(s.step):
            problems.append(
                ((*loc, i, "step"), "Tên bước chỉ gồm chữ thường không dấu, chữ số và dấu _.")
            )
            bad = True
        elif s.step in seen:
            problems.append(((*loc, i, "step"), f"Bước '{s.step}' đã có ở trên; mỗi tên một lần."))
            bad = True
        seen.add(s.step)
        try:
            offset = DURATION.validate_python(s.offset)
        except ValidationError:
            problems.append(
                ((*loc, i, "offset"), "Khoảng thời gian không hợp lệ (ví dụ -P3D, P1D, PT0S).")
            )
            continue
        if abs(offset) > MAX_OFFSET:
            problems.append(((*loc, i, "offset"), "Mỗi bước cách hạn không quá 366 ngày."))
            bad = True
        if not bad:
            out.append(ReminderStep(step=s.step, offset=offset, audience=s.audience))
    return tuple(out)


def offset_text(offset: timedelta) -> str:
    """timedelta(days=-3) → "-P3D" (as the API answers)."""
    return str(DURATION.dump_python(offset, mode="json"))


def checked_policy(
    reports: ReportSteps, cases: CaseSteps
) -> tuple[ReminderPolicy, CaseReminderPolicy] | Problems:
    """The policies to store, or every problem found (locations inside the request body)."""
    problems: Problems = []
    steps = _check_steps(reports.steps, ("reports", "steps"), problems)
    by_type: dict[str, tuple[ReminderStep, ...]] = {}
    if len(reports.by_report_type) > MAX_REPORT_TYPES:
        problems.append(
            (("reports", "by_report_type"), f"Tối đa {MAX_REPORT_TYPES} loại báo cáo riêng.")
        )
    for report_type, type_steps in sorted(reports.by_report_type.items()):
        loc: Loc = ("reports", "by_report_type", report_type)
        if not REPORT_TYPE.fullmatch(report_type):
            problems.append((loc, "Mã loại báo cáo không hợp lệ."))
            continue
        by_type[report_type] = _check_steps(type_steps, loc, problems)
    case_steps = _check_steps(cases.steps, ("cases", "steps"), problems)
    if problems:
        return problems
    return (
        ReminderPolicy(steps=steps, by_report_type=by_type),
        CaseReminderPolicy(steps=case_steps),
    )

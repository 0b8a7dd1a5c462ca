"""The reminder policy (SPEC §7) as data, and the pure sweep over obligations.

A step fires once its instant (due instant + offset) has come, for an obligation still
unfulfilled at the sweep's as-of instant, unless its send key is already in the send log. A
missed sweep therefore catches up every step not yet sent, and a repeated sweep sends nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Container, Iterable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from .messages import ParentDigest, PlannedMessage, ReportReminder, SendKey, digest_ref
from .obligations import Obligation, is_fulfilled


class Audience(StrEnum):
    unit = "unit"
    """The unit that owes the report (or owns the case)."""
    parent = "parent"
    """Its parent unit: for reports one digest of all late children, for cases an escalation."""


class ReminderStep(BaseModel):
    model_config = ConfigDict(frozen=True)

    step: str = Field(pattern=r"^[a-z0-9_]+$", description="e.g. before_3d, parent_digest")
    offset: timedelta = Field(description="relative to the due instant; negative is before")
    audience: Audience = Audience.unit


DEFAULT_STEPS: tuple[ReminderStep, ...] = (
    ReminderStep(step="before_3d", offset=timedelta(days=-3)),
    # Due "before 30/10 00:00" means the last day to submit is 29/10: remind at its start.
    ReminderStep(step="due_day", offset=timedelta(days=-1)),
    ReminderStep(step="after_1d", offset=timedelta(days=1)),
    ReminderStep(step="after_3d", offset=timedelta(days=3)),
    ReminderStep(step="parent_digest", offset=timedelta(days=5), audience=Audience.parent),
)


def _unique_steps(steps: tuple[ReminderStep, ...]) -> tuple[ReminderStep, ...]:
    names = [s.step for s in steps]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"each step name may appear once; repeated: {', '.join(duplicates)}")
    return steps


Steps = Annotated[tuple[ReminderStep, ...], AfterValidator(_unique_steps)]
"""A list of steps whose names are unique (a name is part of the send key)."""


class ReminderPolicy(BaseModel):
    """Default steps, and optionally other steps for some report types."""

    model_config = ConfigDict(frozen=True)

    steps: Steps = DEFAULT_STEPS
    by_report_type: dict[str, Steps] = Field(default_factory=dict)

    def steps_for(self, report_type: str) -> tuple[ReminderStep, ...]:
        return self.by_report_type.get(report_type, self.steps)


def due_reminders(
    obligations: Iterable[Obligation],
    policy: ReminderPolicy,
    as_of: datetime,
    sent_keys: Container[tuple[str, str, str]],
) -> list[PlannedMessage]:
    """Every message whose time has come by `as_of` and that the send log does not hold yet.

    Unit steps go to the unit itself; a parent step becomes ONE digest per parent, report type,
    period and step, listing the children still unfulfilled at `as_of` (none: no digest).
    Ordered by step instant, then send key.
    """
    out: list[PlannedMessage] = []
    late_children: dict[tuple[str, str, str, str, str], list[tuple[Obligation, datetime]]]
    late_children = defaultdict(list)
    for ob in obligations:
        if is_fulfilled(ob, as_of):
            continue
        for rule in policy.steps_for(ob.report_type):
            step_at = ob.due_at + rule.offset
            if step_at > as_of:
                continue
            if rule.audience is Audience.parent:
                if ob.recipient_unit_id is not None:
                    group = (ob.plan_id, ob.report_type, ob.period, ob.recipient_unit_id, rule.step)
                    late_children[group].append((ob, step_at))
                continue
            if SendKey(ob.obligation_id, rule.step, ob.unit_id) in sent_keys:
                continue
            out.append(
                ReportReminder(
                    step=rule.step,
                    recipient_unit_id=ob.unit_id,
                    step_at=step_at,
                    due_at=ob.due_at,
                    obligation_id=ob.obligation_id,
                    plan_id=ob.plan_id,
                    report_type=ob.report_type,
                    period=ob.period,
                    unit_id=ob.unit_id,
                )
            )
    for (plan_id, report_type, period, parent_id, step), items in late_children.items():
        ref = digest_ref(plan_id, report_type, period, parent_id)
        if SendKey(ref, step, parent_id) in sent_keys:
            continue
        items.sort(key=lambda item: item[0].unit_id)
        out.append(
            ParentDigest(
                step=step,
                recipient_unit_id=parent_id,
                step_at=min(step_at for _, step_at in items),
                due_at=min(ob.due_at for ob, _ in items),
                plan_id=plan_id,
                report_type=report_type,
                period=period,
                late_unit_ids=tuple(ob.unit_id for ob, _ in items),
                obligation_ids=tuple(ob.obligation_id for ob, _ in items),
            )
        )
    out.sort(key=lambda m: (m.step_at, m.send_key))
    return out

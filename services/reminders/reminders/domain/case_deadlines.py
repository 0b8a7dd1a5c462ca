"""Reminders about legal-aid case deadlines (SPEC §6, §7): warning, overdue, escalation.

The cases service owns the deadlines; a case's facts list the ones still open. A deadline that
is no longer listed (the case moved past it) or a closed case gets nothing more, and a changed
due instant is a new subject with its own reminders.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict

from lhpn_shared.clock import LOCAL_TZ, ensure_aware
from lhpn_shared.contracts.cases import CaseFacts, CaseStatus
from lhpn_shared.contracts.units import UnitTree

from .messages import CaseReminder, SendKey, case_deadline_ref
from .policy import Audience, ReminderStep, Steps

DEFAULT_CASE_STEPS: tuple[ReminderStep, ...] = (
    ReminderStep(step="warning", offset=timedelta(days=-2)),
    ReminderStep(step="overdue", offset=timedelta(0)),
    ReminderStep(step="escalation", offset=timedelta(days=3), audience=Audience.parent),
)


class CaseReminderPolicy(BaseModel):
    """Steps relative to each deadline; `parent` steps go to the owning unit's parent."""

    model_config = ConfigDict(frozen=True)

    steps: Steps = DEFAULT_CASE_STEPS


def due_case_reminders(
    cases: Iterable[CaseFacts],
    units: UnitTree,
    policy: CaseReminderPolicy,
    as_of: datetime,
    sent_keys: Container[tuple[str, str, str]],
) -> list[CaseReminder]:
    """Every case-deadline step whose time has come by `as_of` and that was not sent yet."""
    out: list[CaseReminder] = []
    for case in cases:
        if case.status is CaseStatus.closed:
            continue
        for deadline in case.deadlines:
            due_at = ensure_aware(deadline.due_at)
            for rule in policy.steps:
                step_at = due_at + rule.offset
                recipient = case_recipient(case.unit_id, units, rule.audience, step_at)
                if step_at > as_of or recipient is None:
                    continue
                ref = case_deadline_ref(case.case_id, deadline.name, due_at)
                if SendKey(ref, rule.step, recipient) in sent_keys:
                    continue
                out.append(
                    CaseReminder(
                        step=rule.step,
                        recipient_unit_id=recipient,
                        step_at=step_at,
                        due_at=due_at,
                        case_id=case.case_id,
                        case_kind=case.kind,
                        unit_id=case.unit_id,
                        deadline=deadline.name,
                    )
                )
    out.sort(key=lambda m: (m.step_at, m.send_key))
    return out


def case_recipient(unit_id: str, units: UnitTree, audience: Audience, at: datetime) -> str | None:
    """Who hears about a case deadline at `at`: the unit answerable for the case that day (the
    case's unit, or after a merge the unit continuing it), or that unit's parent. A unit not
    known yet is told itself; its parent stays unknown (None) until its unit event arrives."""
    owners = units.responsible(unit_id, at.astimezone(LOCAL_TZ).date())
    owner = owners[0] if owners else unit_id
    if audience is Audience.unit:
        return owner
    unit = units.get(owner)
    return unit.parent_id if unit is not None else None

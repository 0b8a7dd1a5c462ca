"""Obligations (SPEC §7): one expected report per unit × report type × period.

An obligation is derived from the plan's schedules and the unit tree; its status is a pure
function of the report's `received_at` (if any) and an as-of instant.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict

from lhpn_shared.contracts.events import ObligationFacts
from lhpn_shared.contracts.plans import Plan
from lhpn_shared.contracts.units import UnitLevel, UnitTree


class ObligationStatus(StrEnum):
    open = "open"
    fulfilled_on_time = "fulfilled_on_time"
    fulfilled_late = "fulfilled_late"
    overdue = "overdue"


class Obligation(BaseModel):
    """A unit owes one report of `report_type` for `period` to `recipient_unit_id`."""

    model_config = ConfigDict(frozen=True)

    obligation_id: str
    plan_id: str
    report_type: str
    period: str
    unit_id: str
    unit_level: UnitLevel
    due_at: AwareDatetime
    """The report is on time when received strictly before this instant."""
    recipient_unit_id: str | None
    """The unit's parent, to whom it reports; None for a root unit."""
    received_at: AwareDatetime | None = None
    """When the (first) report arrived; None while nothing has arrived."""


def obligation_id_for(plan_id: str, report_type: str, period: str, unit_id: str) -> str:
    return f"{plan_id}:{report_type}:{period}:{unit_id}"


def derive_obligations(
    plan: Plan, units: UnitTree, only: Iterable[str] | None = None
) -> list[Obligation]:
    """Every report the plan expects (of the units `only`, when given; the tree still tells
    which units the plan covers): schedule order, then period order, then unit id."""
    out: list[Obligation] = []
    chosen = units.units.values() if only is None else [units.units[u] for u in only]
    ordered = sorted(chosen, key=lambda u: u.unit_id)
    for schedule in plan.report_schedules:
        for period in schedule.periods:
            for unit in ordered:
                if not schedule.expects(unit, period) or not plan.covers(unit.unit_id, units):
                    continue
                out.append(
                    Obligation(
                        obligation_id=obligation_id_for(
                            plan.plan_id, schedule.report_type, period.period, unit.unit_id
                        ),
                        plan_id=plan.plan_id,
                        report_type=schedule.report_type,
                        period=period.period,
                        unit_id=unit.unit_id,
                        unit_level=unit.level,
                        due_at=period.due_at[unit.level],
                        recipient_unit_id=unit.parent_id,
                    )
                )
    return out


def fulfil(obligation: Obligation, received_at: datetime) -> Obligation:
    """Record a report; a resubmission keeps the first `received_at` (SPEC §5)."""
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    if obligation.received_at is not None and obligation.received_at <= received_at:
        return obligation
    return obligation.model_copy(update={"received_at": received_at})


def is_fulfilled(obligation: Obligation, as_of: datetime) -> bool:
    """True when the report had arrived by `as_of` (a later arrival is not known yet)."""
    return obligation.received_at is not None and obligation.received_at <= as_of


def status_at(obligation: Obligation, as_of: datetime) -> ObligationStatus:
    if is_fulfilled(obligation, as_of):
        assert obligation.received_at is not None
        if obligation.received_at < obligation.due_at:
            return ObligationStatus.fulfilled_on_time
        return ObligationStatus.fulfilled_late
    if as_of >= obligation.due_at:
        return ObligationStatus.overdue
    return ObligationStatus.open


def to_facts(obligation: Obligation, as_of: datetime) -> ObligationFacts:
    """The shape carried by `obligation.fulfilled` / `obligation.overdue` events."""
    return ObligationFacts(
        obligation_id=obligation.obligation_id,
        plan_id=obligation.plan_id,
        unit_id=obligation.unit_id,
        report_type=obligation.report_type,
        period=obligation.period,
        due_at=obligation.due_at,
        recipient_unit_id=obligation.recipient_unit_id,
        status=status_at(obligation, as_of).value,
        received_at=obligation.received_at if is_fulfilled(obligation, as_of) else None,
    )

"""Where a subject (an obligation or a case) stands between sweeps.

A sweep handles every step whose instant is at or before its as-of instant (it claims the send
in the send log, or finds it claimed by someone else), then stores on the subject the first
instant after as-of at which a sweep will have work for it: `next_step_at`. Hence every step
strictly before a stored `next_step_at` has been handled, and a sweep loads only the subjects
whose `next_step_at` has come instead of every obligation.

The send log's unique key stays the guarantee against sending twice; `handled_*_keys` only
spare a sweep from planning sends it would find claimed already.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from lhpn_shared.clock import ensure_aware
from lhpn_shared.contracts.cases import CaseFacts, CaseStatus
from lhpn_shared.contracts.units import UnitTree

from .case_deadlines import CaseReminderPolicy, case_recipient
from .messages import SendKey, case_deadline_ref, digest_ref
from .obligations import Obligation
from .policy import Audience, ReminderPolicy


def _first_after(instants: Iterable[datetime], after: datetime | None) -> datetime | None:
    return min((at for at in instants if after is None or at > after), default=None)


def obligation_step_keys(
    obligation: Obligation, policy: ReminderPolicy
) -> list[tuple[SendKey, datetime]]:
    """Each step of the policy for this obligation: its send key and its instant."""
    out: list[tuple[SendKey, datetime]] = []
    for rule in policy.steps_for(obligation.report_type):
        at = obligation.due_at + rule.offset
        if rule.audience is Audience.unit:
            out.append((SendKey(obligation.obligation_id, rule.step, obligation.unit_id), at))
        elif obligation.recipient_unit_id is not None:
            parent = obligation.recipient_unit_id
            ref = digest_ref(obligation.plan_id, obligation.report_type, obligation.period, parent)
            out.append((SendKey(ref, rule.step, parent), at))
    return out


def next_obligation_step_at(
    obligation: Obligation, policy: ReminderPolicy, after: datetime | None
) -> datetime | None:
    """The first instant after `after` (None: the very first) at which a sweep has work for
    this obligation: one of its steps, or its due instant (to find it overdue). None once the
    report has arrived or nothing is left."""
    if obligation.received_at is not None:
        return None
    instants = [at for _, at in obligation_step_keys(obligation, policy)]
    return _first_after([*instants, obligation.due_at], after)


def handled_obligation_keys(
    items: Iterable[tuple[Obligation, datetime | None]], policy: ReminderPolicy
) -> set[SendKey]:
    """The send keys of the steps before each obligation's `next_step_at`."""
    return {
        key
        for obligation, next_step_at in items
        for key, at in obligation_step_keys(obligation, policy)
        if next_step_at is None or at < next_step_at
    }


def case_step_keys(
    case: CaseFacts, units: UnitTree, policy: CaseReminderPolicy
) -> list[tuple[SendKey | None, datetime]]:
    """Each step of each open deadline: its send key (None while the recipient is unknown,
    e.g. the owning unit's parent is not known yet) and its instant."""
    if case.status is CaseStatus.closed:
        return []
    out: list[tuple[SendKey | None, datetime]] = []
    for deadline in case.deadlines:
        due_at = ensure_aware(deadline.due_at)
        ref = case_deadline_ref(case.case_id, deadline.name, due_at)
        for rule in policy.steps:
            at = due_at + rule.offset
            recipient = case_recipient(case.unit_id, units, rule.audience, at)
            key = SendKey(ref, rule.step, recipient) if recipient is not None else None
            out.append((key, at))
    return out


def next_case_step_at(
    case: CaseFacts, policy: CaseReminderPolicy, after: datetime | None
) -> datetime | None:
    """Like `next_obligation_step_at`, for the deadlines a case lists now (every step counts,
    even one whose recipient is not known yet: the sweep decides with the tree it has then)."""
    if case.status is CaseStatus.closed:
        return None
    instants = (
        ensure_aware(deadline.due_at) + rule.offset
        for deadline in case.deadlines
        for rule in policy.steps
    )
    return _first_after(instants, after)


def handled_case_keys(
    items: Iterable[tuple[CaseFacts, datetime | None]],
    units: UnitTree,
    policy: CaseReminderPolicy,
) -> set[SendKey]:
    return {
        key
        for case, next_step_at in items
        for key, at in case_step_keys(case, units, policy)
        if key is not None and (next_step_at is None or at < next_step_at)
    }


def resume_after(previous_next_step_at: datetime | None, now: datetime) -> datetime:
    """After a policy change: the instant after which a subject's steps are still to come.

    Every step strictly before the stored `next_step_at` was handled under the old policy, so
    the new policy starts at that instant (a step of the new policy at exactly that instant
    still fires), or at `now` if that is earlier: a new step whose instant has passed already
    is not sent late, one still ahead is."""
    if previous_next_step_at is None:
        return now
    return min(now, previous_next_step_at - timedelta(milliseconds=1))

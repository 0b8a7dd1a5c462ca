"""A case as the contract and the callers see it: its facts (events, lists) and the whole case
with its personal data only for staff of a union holding it."""

from __future__ import annotations

from datetime import datetime

from lhpn_shared.auth import Principal, Role
from lhpn_shared.contracts.cases import CaseFacts, CaseStatus

from .context import CaseContext
from .domain.deadlines import is_overdue
from .domain.succession import succession_notice
from .domain.visibility import withheld_notice
from .domain.workflow import allowed_targets, label
from .models import CaseListItem, CaseOut
from .repository import StoredCase

_STATUS_ORDER = list(CaseStatus)


def facts(case: StoredCase, now: datetime) -> CaseFacts:
    s = case.state
    return CaseFacts(
        case_id=case.case_id,
        unit_id=case.unit_id,
        kind=s.kind,
        topic=case.topic,
        channel=s.channel,
        status=s.status,
        received_on=s.received_on,
        flags=[f.value for f in case.flags],
        complex=s.complex,
        remote_area=s.remote_area,
        deadlines=[d.to_contract() for d in case.deadlines],
        next_due_at=case.next_due_at,
        overdue=is_overdue(case.deadlines, now),
        revision=s.revision,
    )


def item(case: StoredCase, now: datetime) -> CaseListItem:
    return CaseListItem(
        **dict(facts(case, now)),
        assigned_to=case.assigned_to,
        status_label=label(case.state.status),
        status_at=case.state.status_at,
    )


def view(ctx: CaseContext, case: StoredCase, caller: Principal) -> CaseOut:
    """The case as `caller` may see it: with its personal data (summary, requester, notes,
    decline reason) for staff of a union holding it; otherwise without, and saying so."""
    s = case.state
    personal = ctx.sees(caller, case)
    opened = ctx.sealer.open(case) if personal else None
    timeline = [
        e.model_copy(update={"note": opened.notes[i] if opened else None})
        for i, e in enumerate(s.timeline)
    ]
    return CaseOut(
        **dict(item(case, ctx.now())),
        personal_data=personal,
        personal_data_notice=None if personal else _notice(ctx, caller, case),
        summary=opened.summary if opened else None,
        requester=opened.requester if opened else None,
        timeline=timeline,
        decline_reason=opened.decline_reason if opened else None,
        referral=s.referral,
        referred_up_to=list(s.referred_up),
        extensions_granted=s.extensions_granted,
        allowed_transitions=sorted(allowed_targets(s), key=_STATUS_ORDER.index),
    )


def _notice(ctx: CaseContext, caller: Principal, case: StoredCase) -> str:
    moved = succession_notice(case.unit_id, ctx.units.last, ctx.today())
    staff = caller.role not in (Role.admin, Role.system)
    return moved if moved and staff else withheld_notice(caller, case.unit_id, case.state)

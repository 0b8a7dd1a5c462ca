"""Handling a case: its workflow transitions, deadline extensions, referring it up to the
parent union and handing it back down. Only staff of a union holding the case may.

Each change is one document write carrying its events in the document's outbox
(`lhpn_shared.outbox`), refused if someone changed the case meanwhile (`save_change`).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime
from uuid import UUID

from lhpn_shared.auth import Principal
from lhpn_shared.clock import to_millis
from lhpn_shared.contracts.cases import CaseStatus, CaseStatusChange
from lhpn_shared.http import FieldProblem
from lhpn_shared.mongo import Doc
from lhpn_shared.outbox import with_outbox

from .context import CaseContext
from .domain.succession import holding_unit
from .domain.visibility import refer_up as refer_state_up
from .domain.visibility import return_down as return_state_down
from .domain.workflow import CaseState, apply_transition, grant_extension
from .errors import Conflict, rules
from .models import CaseOut, ExtensionRequest, ReferralUpRequest, TransitionRequest
from .repository import StoredCase, deadlines_to_doc, entry_to_doc, state_to_doc
from .views import facts, view

log = logging.getLogger("cases")


async def transition(
    ctx: CaseContext, case_id: UUID, req: TransitionRequest, caller: Principal
) -> CaseOut:
    """Move the case along its workflow (409 naming the allowed moves when it may not)."""
    case = await ctx.load(case_id)
    await ctx.require_holder(caller, case, "transition")
    at = _at(ctx, req.at)
    state = rules(
        lambda: apply_transition(
            case.state,
            req.to,
            actor=caller.subject,
            at=at,
            note=req.note,
            referral=req.referral,
        )
    )
    event_types = ["case.status_changed"] + (
        ["case.closed"] if state.status is CaseStatus.closed else []
    )
    record = ctx.audit_entry(caller, "transition", case.case_id, case.unit_id, personal_data=True)
    changed = await save_change(ctx, case, state, event_types, record)
    return view(ctx, changed, caller)


async def extend(
    ctx: CaseContext, case_id: UUID, req: ExtensionRequest, caller: Principal
) -> CaseOut:
    """Extend the resolve deadline once more (denunciations: twice by 30 days)."""
    case = await ctx.load(case_id)
    await ctx.require_holder(caller, case, "extend")
    at = _at(ctx, req.at)
    kind_rules = ctx.config.for_kind(case.state.kind)
    state = rules(
        lambda: grant_extension(
            case.state,
            max_extensions=kind_rules.max_extensions,
            actor=caller.subject,
            at=at,
            note=req.note,
        )
    )
    record = ctx.audit_entry(caller, "extend", case.case_id, case.unit_id, personal_data=True)
    changed = await save_change(ctx, case, state, ["case.status_changed"], record)
    return view(ctx, changed, caller)


async def refer_up(
    ctx: CaseContext, case_id: UUID, req: ReferralUpRequest, caller: Principal
) -> CaseOut:
    """Refer the case up to the parent of the union holding it: from then on the parent's
    staff see its personal data (SPEC §6). No event: no fact of the contract changes."""
    case = await ctx.load(case_id)
    await ctx.require_holder(caller, case, "refer_up")
    at = _at(ctx, req.at)
    tree = await ctx.tree()
    state = rules(
        lambda: refer_state_up(
            case.state,
            owner_unit_id=holding_unit(case.unit_id, tree, ctx.today(), caller.unit_id),
            by_unit_id=caller.unit_id,
            tree=tree,
            actor=caller.subject,
            at=at,
            note=req.note,
        )
    )
    record = ctx.audit_entry(caller, "refer_up", case.case_id, case.unit_id, personal_data=True)
    changed = await save_change(ctx, case, state, [], record)
    return view(ctx, changed, caller)


async def return_down(
    ctx: CaseContext, case_id: UUID, req: ReferralUpRequest, caller: Principal
) -> CaseOut:
    """The union the case was referred up to hands it back; its staff no longer see the
    personal data (the answer already leaves it out)."""
    case = await ctx.load(case_id)
    await ctx.require_holder(caller, case, "return_down")
    at = _at(ctx, req.at)
    tree = await ctx.tree()
    state = rules(
        lambda: return_state_down(
            case.state,
            owner_unit_id=holding_unit(case.unit_id, tree, ctx.today(), caller.unit_id),
            by_unit_id=caller.unit_id,
            actor=caller.subject,
            at=at,
            note=req.note,
        )
    )
    record = ctx.audit_entry(caller, "return_down", case.case_id, case.unit_id, personal_data=True)
    changed = await save_change(ctx, case, state, [], record)
    return view(ctx, changed, caller)


async def save_change(
    ctx: CaseContext, case: StoredCase, state: CaseState, event_types: list[str], audit: Doc
) -> StoredCase:
    """One write: the new state, the timeline's new entry (`$push`: it only grows) with its
    note sealed, a new decline reason sealed, the deadlines, the events and the audit record
    of the change (`ctx.audit_entry`); refused if someone changed the case meanwhile."""
    index, entry = len(state.timeline) - 1, state.timeline[-1]
    note = ctx.sealer.seal_note(case.case_id, index, entry.note)
    sealed = replace(case.sealed, notes=(*case.sealed.notes, note))
    fields = state_to_doc(state)
    del fields["timeline"]
    if state.decline_reason is not None:  # read cases carry none: it was just given
        reason = ctx.sealer.seal_decline_reason(case.case_id, state.decline_reason)
        fields["sealed.decline_reason"] = reason
        sealed = replace(sealed, decline_reason=reason)
    bare = state.model_copy(
        update={
            "decline_reason": None,
            "timeline": (*state.timeline[:-1], entry.model_copy(update={"note": None})),
        }
    )
    changed = replace(case, state=bare, deadlines=ctx.deadlines(state), sealed=sealed)
    now = ctx.now()
    change = CaseStatusChange(
        **dict(facts(changed, now)), from_status=case.state.status, changed_at=state.last_at
    )
    events = [ctx.event(t, change, changed.unit_id) for t in event_types]
    fields |= {
        "deadlines": deadlines_to_doc(changed.deadlines),
        "next_due_at": changed.next_due_at,
    }
    update = with_outbox({"$set": fields}, events, [audit])
    update["$push"]["timeline"] = entry_to_doc(entry, note)
    result = await ctx.store.cases.update_one(
        {"_id": str(case.case_id), "revision": case.state.revision}, update
    )
    if result.matched_count == 0:
        raise Conflict("Hồ sơ vừa được người khác cập nhật, vui lòng tải lại rồi thử lại.")
    ctx.wake()
    log.info(
        "case changed",
        extra={
            "case_id": str(case.case_id),
            "from_status": case.state.status.value,
            "status": state.status.value,
            "revision": state.revision,
        },
    )
    return changed


def _at(ctx: CaseContext, given: datetime | None) -> datetime:
    """When the change happened: now, or an earlier instant the caller gives (never later)."""
    now = ctx.now()
    if given is None:
        return now
    at = to_millis(given.astimezone(UTC))
    if at > now:
        raise FieldProblem([(("at",), "Thời điểm không được ở tương lai.")])
    return at

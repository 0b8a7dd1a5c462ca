"""Opening a case (`POST /api/v1/cases`); `inbound` opens the cases other systems announce
through the same `create_case`.

The case and its `case.opened` event are one document insert (the event in the document's
outbox, `lhpn_shared.outbox`); the relay publishes it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from uuid import UUID, uuid4

from pymongo.errors import DuplicateKeyError

from lhpn_shared.auth import Principal, Role
from lhpn_shared.http import FieldProblem
from lhpn_shared.mongo import Doc
from lhpn_shared.outbox import outbox_fields

from .context import SOURCE, CaseContext
from .domain.access import Access
from .domain.entry import opening_instant
from .domain.flags import normalise_flags
from .domain.succession import case_access_on
from .domain.workflow import open_case as open_state
from .errors import Conflict, Forbidden, refusal, rules
from .models import CaseFields, CaseOut, NewCase
from .repository import StoredCase, case_to_doc
from .views import facts, view

log = logging.getLogger("cases")


async def open_case(ctx: CaseContext, new: NewCase, caller: Principal) -> tuple[CaseOut, bool]:
    """Open a case; returns (case, created). The same `case_id` with the same content is a
    safe retry (the case as it is now); with other content it is a conflict."""
    tree = await ctx.tree_with(new.unit_id)
    if new.unit_id not in tree:
        raise FieldProblem([(("unit_id",), f"Không có đơn vị mã '{new.unit_id}'.")])
    ctx.check_unit_on(tree, new.unit_id, new.received_on)
    access = case_access_on(caller, new.unit_id, tree, ctx.today())
    system_without_personal_data = (
        caller.role is Role.system and access is Access.facts and not new.has_personal_data()
    )
    if access is not Access.personal and not system_without_personal_data:
        await ctx.audit(caller, "open", new.case_id, new.unit_id, outcome="refused")
        raise Forbidden(refusal(caller, new.unit_id, access, listing=False))
    fields = CaseFields.model_validate(new.model_dump(exclude={"case_id"}))

    def opened(case: StoredCase) -> Doc:
        personal = ctx.sees(caller, case)
        return ctx.audit_entry(caller, "open", case.case_id, case.unit_id, personal_data=personal)

    case, created = await create_case(
        ctx, fields, new.case_id or uuid4(), actor=caller.subject, audit=opened
    )
    if not created:  # a retry: the stored case is shown again, a read
        personal = ctx.sees(caller, case)
        await ctx.audit(caller, "open", case.case_id, case.unit_id, personal_data=personal)
    return view(ctx, case, caller), created


async def create_case(
    ctx: CaseContext,
    fields: CaseFields,
    case_id: UUID,
    *,
    actor: str,
    audit: Callable[[StoredCase], Doc],
    event_id: UUID | None = None,
    source: str = SOURCE,
    correlation_id: str | None = None,
) -> tuple[StoredCase, bool]:
    """Insert the case with its `case.opened` event and the audit record `audit(case)` of its
    opening; returns (case, created). An existing `case_id` with the same content is the case
    as it is now (not created, nothing recorded); with other content it is a `Conflict`."""
    now = ctx.now()
    state = rules(
        lambda: open_state(
            kind=fields.kind,
            channel=fields.channel,
            received_on=fields.received_on,
            actor=actor,
            at=opening_instant(fields.received_on, now),
            complex=fields.complex,
            remote_area=fields.remote_area,
        )
    )
    case = StoredCase(
        case_id=case_id,
        unit_id=fields.unit_id,
        topic=fields.topic,
        flags=tuple(normalise_flags(fields.flags)),
        assigned_to=fields.assigned_to,
        state=state,
        deadlines=ctx.deadlines(state),
        sealed=ctx.sealer.seal_new(fields, case_id),
    )
    event = ctx.event(
        "case.opened",
        facts(case, now),
        case.unit_id,
        event_id=event_id,
        source=source,
        correlation_id=correlation_id,
    )
    case = replace(case, source_event_ids=(str(event.event_id),))
    try:
        await ctx.store.cases.insert_one(
            {**case_to_doc(case), **outbox_fields([event], [audit(case)])}
        )
    except DuplicateKeyError:
        existing = await ctx.load(case_id)
        if _same_content(ctx, existing, fields):
            return existing, False
        raise Conflict(f"Mã hồ sơ {case_id} đã được dùng cho một hồ sơ khác.") from None
    ctx.wake()
    log.info(
        "case opened",
        extra={"case_id": str(case_id), "unit_id": case.unit_id, "kind": fields.kind.value},
    )
    return case, True


def _same_content(ctx: CaseContext, case: StoredCase, fields: CaseFields) -> bool:
    stored = (
        case.unit_id,
        case.state.kind,
        case.topic,
        case.state.channel,
        case.state.received_on,
        case.flags,
        case.state.complex,
        case.state.remote_area,
        case.assigned_to,
    )
    wanted = (
        fields.unit_id,
        fields.kind,
        fields.topic,
        fields.channel,
        fields.received_on,
        tuple(normalise_flags(fields.flags)),
        fields.complex,
        fields.remote_area,
        fields.assigned_to,
    )
    if stored != wanted:
        return False
    requester = fields.requester if fields.requester and not fields.requester.is_empty() else None
    return ctx.sealer.summary_and_requester(case) == (fields.summary, requester)

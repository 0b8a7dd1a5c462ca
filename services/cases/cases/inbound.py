"""`case.opened` announced by other systems on `lhpn.inbound` (queue `cases.inbound`): opened
here without personal data, through the same `opening.create_case` as the HTTP path, and
republished on `lhpn.events`."""

from __future__ import annotations

from lhpn_shared.access import WRITE, AccessDenied, require_event, require_unit
from lhpn_shared.auth import Principal
from lhpn_shared.broker import Reject
from lhpn_shared.contracts.cases import CaseFacts, CaseStatus
from lhpn_shared.contracts.events import Envelope
from lhpn_shared.http import FieldProblem

from .context import CaseContext
from .errors import Conflict
from .models import CaseFields
from .opening import create_case

_INBOUND_FIELDS = {
    "unit_id",
    "kind",
    "topic",
    "channel",
    "received_on",
    "flags",
    "complex",
    "remote_area",
}


async def handle_inbound(ctx: CaseContext, envelope: Envelope, principal: Principal) -> str:
    """Open the case another system (`principal`) announced, without personal data, and
    republish `case.opened`.

    Returns 'accepted' or 'duplicate'; raises `Reject` (→ dead-letter queue with the reason)
    for a message that can never be accepted: not `case.opened`, outside the sender's
    subtree or event types, or a `case_id` that is another case's. A requester field in
    `data` is refused by the contract itself (`CaseFacts` forbids unknown fields).
    """
    if (envelope.type, envelope.version) != ("case.opened", 1):
        raise Reject(f"cases does not accept {envelope.routing_key} on lhpn.inbound")
    try:
        require_event(principal, envelope.routing_key)
    except AccessDenied as exc:
        raise Reject(str(exc)) from exc
    facts = CaseFacts.model_validate(envelope.data)
    if facts.status is not CaseStatus.received:
        raise Reject(f"a new case must have status 'received', not '{facts.status.value}'")
    if envelope.unit_id is not None and envelope.unit_id != facts.unit_id:
        raise Reject("envelope unit_id and data.unit_id differ")
    if await ctx.store.cases.find_one(
        {"_id": str(facts.case_id), "source_event_ids": str(envelope.event_id)}, {"_id": 1}
    ):
        return "duplicate"
    tree = await ctx.tree_with(facts.unit_id)
    if facts.unit_id not in tree:
        raise Reject(f"unknown unit_id '{facts.unit_id}'")
    try:
        require_unit(principal, facts.unit_id, tree, WRITE)
        ctx.check_unit_on(tree, facts.unit_id, facts.received_on)
    except (AccessDenied, FieldProblem) as exc:
        raise Reject(str(exc)) from exc
    fields = CaseFields.model_validate(facts.model_dump(include=_INBOUND_FIELDS))
    try:
        _, created = await create_case(
            ctx,
            fields,
            facts.case_id,
            actor=principal.subject,
            audit=lambda case: ctx.audit_entry(principal, "open", case.case_id, case.unit_id),
            event_id=envelope.event_id,
            source=envelope.source,
            correlation_id=envelope.correlation_id,
        )
    except (FieldProblem, Conflict) as exc:
        raise Reject(str(exc)) from exc
    return "accepted" if created else "duplicate"

"""Events other systems send (`lhpn.inbound`, `POST /api/v1/events`), stored like the HTTP
path and republished on `lhpn.events`.

The sender is a principal: a system bound to a unit subtree and to event types (a broker user or
an API key), or a signed-in user posting an envelope. It must be allowed the event type, the
unit the event names (envelope and data) and, for a correction or a void, the unit of the
stored record; a client-chosen id that is another unit's record is refused, never applied.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from lhpn_shared.access import WRITE, AccessDenied, require_event, require_unit
from lhpn_shared.broker import Reject
from lhpn_shared.contracts.activities import Activity, ActivityFields
from lhpn_shared.contracts.events import ActivityVoided, Envelope, parse_data
from lhpn_shared.http import FieldProblem
from lhpn_shared.principal import Principal

from .errors import Conflict, NotFound, StaleRevision
from .models import ReportSubmission

if TYPE_CHECKING:
    from .service import Intake

log = logging.getLogger("intake.inbound")


async def handle_inbound(intake: Intake, envelope: Envelope, principal: Principal) -> str:
    """Validate an inbound envelope, store it like the HTTP path, republish it.

    Returns what happened ('accepted' | 'duplicate'); raises `Reject` with the reason for a
    message that can never be accepted (it goes to the dead-letter queue; `POST /api/v1/events`
    answers it with 422, or 403/409 for the access and conflict refusals below).
    """
    kw: dict[str, Any] = {
        "event_id": envelope.event_id,
        "source": envelope.source,
        "correlation_id": envelope.correlation_id,
    }
    try:
        require_event(principal, envelope.routing_key)
        data = parse_data(envelope)
        for unit_id in {envelope.unit_id, getattr(data, "unit_id", None)} - {None}:
            assert isinstance(unit_id, str)
            if unit_id in intake.tree:
                require_unit(principal, unit_id, intake.tree, WRITE)
        if envelope.type == "activity.recorded":
            assert isinstance(data, Activity)
            return await _activity(intake, data, principal, kw)
        if envelope.type == "activity.voided":
            assert isinstance(data, ActivityVoided)
            if await _seen(intake, str(data.activity_id), envelope):
                return "duplicate"
            await intake.void_activity(
                data.activity_id, principal, reason=data.reason, revision=data.revision, **kw
            )
            return "accepted"
        if envelope.type == "report.submitted":
            sub = ReportSubmission.model_validate(envelope.data)
            _, changed = await intake.submit_report(sub, principal, **kw)
            return "accepted" if changed else "duplicate"
    except (FieldProblem, NotFound) as exc:
        raise Reject(str(exc)) from exc
    raise Reject(f"intake does not accept {envelope.routing_key} on lhpn.inbound")


async def _seen(intake: Intake, doc_id: str, envelope: Envelope) -> bool:
    doc = await intake.store.activities.find_one(
        {"_id": doc_id, "source_event_ids": str(envelope.event_id)}, {"_id": 1}
    )
    return doc is not None


async def _activity(
    intake: Intake, data: Activity, principal: Principal, kw: dict[str, Any]
) -> str:
    fields = ActivityFields.model_validate(
        data.model_dump(include=set(ActivityFields.model_fields))
    )
    # insert first: the common case (a new activity) costs one write and no read; the
    # sender's revision is kept, so that its corrections — handled in whatever order they are
    # delivered, several at once — leave the newest
    try:
        _, created = await intake.record_activity(
            fields, principal, activity_id=data.activity_id, revision=data.revision, **kw
        )
    except Conflict:
        created = None  # the id exists with other content: a correction, or stale
    if created is not None:
        return "accepted" if created else "duplicate"
    existing = await intake.store.activities.find_one({"_id": str(data.activity_id)})
    if existing is None or str(kw["event_id"]) in existing.get("source_event_ids", []):
        return "duplicate"
    if existing["unit_id"] not in intake.tree or not _may_write(intake, principal, existing):
        raise Conflict(f"Mã hoạt động {data.activity_id} đã được dùng cho một hoạt động khác.")
    try:
        await intake.correct_activity(
            data.activity_id, fields, principal, revision=data.revision, **kw
        )
    except StaleRevision:
        log.info(
            "inbound activity not newer than stored, ignored",
            extra={"activity_id": str(data.activity_id), "revision": data.revision},
        )
        return "duplicate"
    return "accepted"


def _may_write(intake: Intake, principal: Principal, stored: dict[str, Any]) -> bool:
    try:
        require_unit(principal, stored["unit_id"], intake.tree, WRITE)
    except AccessDenied:
        return False
    return True

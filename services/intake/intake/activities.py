"""Activities: recorded, corrected (a new revision of the whole activity), voided, read and
listed. Every write takes the authenticated principal: it is the recorded actor, it must reach
the unit written to AND the stored activity's unit (an id that belongs to another unit's record
answers 409 without changing or showing it), and the write is audited."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from pymongo.errors import DuplicateKeyError

from lhpn_shared.clock import LOCAL_TZ
from lhpn_shared.contracts.activities import Activity, ActivityFields
from lhpn_shared.contracts.events import ActivityVoided
from lhpn_shared.http import FieldProblem
from lhpn_shared.outbox import outbox_fields, with_outbox
from lhpn_shared.principal import Principal

from . import domain
from .context import SOURCE, IntakeContext, page
from .errors import Conflict, NotFound, StaleRevision
from .repository import activity_from_doc, activity_to_doc


def _check(ctx: IntakeContext, fields: ActivityFields) -> None:
    today = ctx.now().astimezone(LOCAL_TZ).date()
    problems = domain.activity_problems(fields, ctx.tree.get(fields.unit_id), today)
    if problems:
        raise FieldProblem(problems)


async def get_activity(ctx: IntakeContext, activity_id: UUID) -> Activity:
    doc = await ctx.store.activities.find_one({"_id": str(activity_id)})
    if doc is None:
        raise NotFound(f"Không tìm thấy hoạt động {activity_id}.")
    return activity_from_doc(doc)


async def record_activity(
    ctx: IntakeContext,
    fields: ActivityFields,
    principal: Principal,
    *,
    activity_id: UUID | None = None,
    event_id: UUID | None = None,
    source: str = SOURCE,
    correlation_id: str | None = None,
    revision: int = 1,
) -> tuple[Activity, bool]:
    """Record a new activity. Returns (activity, created). The same `activity_id` with the
    same content is a safe retry (nothing new); with other content it is a conflict.
    `revision`: the sender's, for an activity another system numbers itself (inbound)."""
    ctx.require_write(principal, fields.unit_id)
    _check(ctx, fields)
    actor = principal.subject
    activity = Activity(
        **fields.model_dump(),
        activity_id=activity_id or uuid4(),
        revision=revision,
        recorded_at=ctx.now(),
        recorded_by=actor,
    )
    event = ctx.event(
        "activity.recorded",
        activity,
        activity.unit_id,
        event_id=event_id,
        source=source,
        correlation_id=correlation_id,
    )
    doc = {
        "_id": str(activity.activity_id),
        **activity_to_doc(activity),
        "source_event_ids": [str(event.event_id)],
        **outbox_fields(
            [event],
            ctx.audit_entries(principal, "activities.record", activity.activity_id, fields.unit_id),
        ),
    }
    try:
        await ctx.store.new_activities.insert_one(doc)
    except DuplicateKeyError:
        existing = await get_activity(ctx, activity.activity_id)
        if existing.unit_id == fields.unit_id and _same_content(existing, fields):
            return existing, False
        raise Conflict(
            f"Mã hoạt động {activity.activity_id} đã được dùng cho một hoạt động khác."
        ) from None
    ctx.wake(ctx.store.activities.name)
    return activity, True


async def correct_activity(
    ctx: IntakeContext,
    activity_id: UUID,
    fields: ActivityFields,
    principal: Principal,
    *,
    event_id: UUID | None = None,
    source: str = SOURCE,
    correlation_id: str | None = None,
    revision: int | None = None,
) -> Activity:
    """A correction: a new revision of the whole activity, by someone who may write for
    both the unit it belongs to and the unit it names now.

    `revision`: the sender's number for it (inbound): applied only over an older one —
    written with a guard on the stored revision, so two corrections handled at once end
    with the newer, whichever writes first — else `StaleRevision`."""
    current = await get_activity(ctx, activity_id)
    ctx.require_write(principal, current.unit_id)
    ctx.require_write(principal, fields.unit_id)
    actor = principal.subject
    if revision is not None and current.revision >= revision:
        raise StaleRevision(f"revision {revision} <= {current.revision} stored")
    if current.voided:
        raise Conflict("Hoạt động đã bị hủy, không thể sửa.")
    _check(ctx, fields)
    if _same_content(current, fields) and revision is None:
        return current
    updated = Activity(
        **fields.model_dump(),
        activity_id=activity_id,
        revision=current.revision + 1 if revision is None else revision,
        recorded_at=ctx.now(),
        recorded_by=actor,
    )
    event = ctx.event(
        "activity.recorded",
        updated,
        updated.unit_id,
        event_id=event_id,
        source=source,
        correlation_id=correlation_id,
    )
    update = with_outbox(
        {"$set": activity_to_doc(updated)},
        [event],
        ctx.audit_entries(principal, "activities.correct", activity_id, updated.unit_id),
    )
    update["$push"]["source_event_ids"] = str(event.event_id)
    guard: dict[str, Any] = (
        {"revision": current.revision}
        if revision is None
        else {"revision": {"$lt": revision}, "voided": {"$ne": True}}
    )
    result = await ctx.store.activities.update_one({"_id": str(activity_id), **guard}, update)
    if result.matched_count == 0:
        if revision is not None:  # a newer revision or a void was written meanwhile
            return await correct_activity(
                ctx,
                activity_id,
                fields,
                principal,
                event_id=event_id,
                source=source,
                correlation_id=correlation_id,
                revision=revision,
            )
        raise Conflict("Hoạt động vừa được người khác sửa, vui lòng tải lại rồi thử lại.")
    ctx.wake(ctx.store.activities.name)
    return updated


async def void_activity(
    ctx: IntakeContext,
    activity_id: UUID,
    principal: Principal,
    *,
    reason: str = "",
    event_id: UUID | None = None,
    source: str = SOURCE,
    correlation_id: str | None = None,
    revision: int | None = None,
) -> Activity:
    """`revision`: the sender's number for the void (inbound), kept when it is above the
    stored one, so that a correction it follows, handled after it, is seen as older. An
    inbound void applies to whatever is stored when it is written (a correction handled at
    the same time is voided with it); a staff member's void over HTTP answers 409 instead."""
    current = await get_activity(ctx, activity_id)
    ctx.require_write(principal, current.unit_id)
    actor = principal.subject
    if current.voided:
        return current
    now = ctx.now()
    number = current.revision + 1 if revision is None else max(revision, current.revision + 1)
    voided = current.model_copy(update={"voided": True, "revision": number})
    data = ActivityVoided(
        activity_id=activity_id,
        unit_id=current.unit_id,
        revision=voided.revision,
        voided_at=now,
        reason=reason,
    )
    event = ctx.event(
        "activity.voided",
        data,
        current.unit_id,
        event_id=event_id,
        source=source,
        correlation_id=correlation_id,
    )
    update = with_outbox(
        {
            "$set": {
                "voided": True,
                "revision": voided.revision,
                "voided_at": now,
                "voided_by": actor,
            }
        },
        [event],
        ctx.audit_entries(principal, "activities.void", activity_id, current.unit_id),
    )
    update["$push"]["source_event_ids"] = str(event.event_id)
    result = await ctx.store.activities.update_one(
        {"_id": str(activity_id), "revision": current.revision}, update
    )
    if result.matched_count == 0:
        if revision is not None:  # another system's void: of whatever is stored now
            return await void_activity(
                ctx,
                activity_id,
                principal,
                reason=reason,
                event_id=event_id,
                source=source,
                correlation_id=correlation_id,
                revision=revision,
            )
        raise Conflict("Hoạt động vừa được người khác sửa, vui lòng tải lại rồi thử lại.")
    ctx.wake(ctx.store.activities.name)
    return voided


async def list_activities(
    ctx: IntakeContext,
    unit_ids: list[str],
    *,
    kind: str | None,
    from_on: str | None,
    to_on: str | None,
    include_voided: bool,
    limit: int,
    cursor: str | None,
) -> tuple[list[Activity], str | None]:
    query: dict[str, Any] = {"unit_id": {"$in": unit_ids}}
    if kind:
        query["kind"] = kind
    if from_on or to_on:
        query["occurred_on"] = {
            **({"$gte": from_on} if from_on else {}),
            **({"$lte": to_on} if to_on else {}),
        }
    if not include_voided:
        query["voided"] = False
    docs, nxt = await page(ctx.store.activities, query, limit, cursor)
    return [activity_from_doc(d) for d in docs], nxt


def _same_content(activity: Activity, fields: ActivityFields) -> bool:
    return (
        ActivityFields.model_validate(activity.model_dump(include=set(ActivityFields.model_fields)))
        == fields
    )

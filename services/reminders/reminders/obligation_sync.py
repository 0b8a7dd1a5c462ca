"""Obligations kept in step with plans, units and reports: derived from plan × units, inserted,
moved with their due instant or parent, dropped when no longer expected, and fulfilled by their
report (`obligation.fulfilled` in the same document write)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from pymongo import UpdateOne
from pymongo.errors import BulkWriteError

from lhpn_shared.clock import to_millis
from lhpn_shared.contracts.events import Envelope, ObligationFacts, make_event
from lhpn_shared.contracts.plans import Plan
from lhpn_shared.contracts.units import Unit, UnitTree
from lhpn_shared.mongo import Doc
from lhpn_shared.outbox import outbox_fields, with_outbox

from .context import BATCH, BY_ID_LIMIT, SOURCE, RemindersContext, event_id
from .domain.obligations import (
    Obligation,
    ObligationStatus,
    derive_obligations,
    fulfil,
    obligation_id_for,
)
from .domain.progress import next_obligation_step_at
from .repository import obligation_definition, obligation_doc, report_key

log = logging.getLogger("reminders")


async def sync_obligations(
    ctx: RemindersContext, plan: Plan, units: list[Unit], tree: UnitTree | None = None
) -> None:
    """Make the stored obligations of `plan` for `units` what derivation says: insert new
    ones (fulfilled at once when their report is already here), follow a changed due
    instant or parent, drop open ones no longer expected (a unit that ceased to exist).
    `tree`: the units to derive from (default: every unit known here, with `units`)."""
    if tree is None:
        tree = ctx.full_tree(units)
    derived = derive_obligations(plan, tree, only=sorted({u.unit_id for u in units}))
    candidates = {
        obligation_id_for(plan.plan_id, s.report_type, p.period, u.unit_id)
        for s in plan.report_schedules
        for p in s.periods
        for u in units
        if u.level in s.levels
    }
    if len(candidates) <= BY_ID_LIMIT:
        query: Doc = {"_id": {"$in": sorted(candidates)}}
    else:
        query = {"plan_id": plan.plan_id}
    found = ctx.store.obligations.find(query, {"outbox": 0}, batch_size=BATCH)
    existing = {d["_id"]: d async for d in found}
    reports = await _reports_for(ctx, derived)
    inserts: list[Doc] = []
    still_open: list[Obligation] = []
    updates: list[UpdateOne] = []
    steps: list[datetime | None] = []  # the `next_step_at` these writes may store
    for ob in derived:
        report = reports.get(report_key(ob.unit_id, ob.report_type, ob.period))
        doc = existing.pop(ob.obligation_id, None)
        if doc is None:
            inserts.append(_new_obligation_doc(ctx, ob, report))
            steps.append(inserts[-1]["next_step_at"])
            if report is None:
                still_open.append(ob)
        elif (op := _resync(ctx, doc, ob, report)) is not None:
            updates.append(op)
            if doc.get("received_at") is None:
                steps.append(next_obligation_step_at(ob, ctx.policy, None))
    stale = [i for i, d in existing.items() if i in candidates and d.get("received_at") is None]
    async with ctx.agenda.scheduling(steps):
        await _insert_new(ctx, inserts)
        if updates:
            await ctx.store.obligations.bulk_write(updates, ordered=False)
    if stale:
        await ctx.store.obligations.delete_many({"_id": {"$in": stale}})
    # a report stored while we derived: fulfil now (on_report may have missed the new ones)
    await fulfil_where_reported(ctx, still_open)
    if any(d["outbox_pending"] for d in inserts) or updates:
        ctx.wake_relay()
    if not (inserts or updates or stale):
        return
    log.info(
        "obligations synchronised",
        extra={
            "plan_id": plan.plan_id,
            "units": len(units),
            "inserted": len(inserts),
            "updated": len(updates),
            "removed": len(stale),
        },
    )


async def _reports_for(ctx: RemindersContext, obligations: list[Obligation]) -> dict[str, Doc]:
    keys = {report_key(o.unit_id, o.report_type, o.period) for o in obligations}
    if not keys:
        return {}
    if len(keys) <= BY_ID_LIMIT:
        query: Doc = {"_id": {"$in": sorted(keys)}}
    else:
        query = {"report_type": {"$in": sorted({o.report_type for o in obligations})}}
    found = ctx.store.reports.find(query, batch_size=BATCH)
    return {d["_id"]: d async for d in found if d["_id"] in keys}


def _new_obligation_doc(ctx: RemindersContext, ob: Obligation, report: Doc | None) -> Doc:
    if report is None:
        next_step_at = next_obligation_step_at(ob, ctx.policy, None)
        return {
            **obligation_doc(ob, next_step_at=next_step_at),
            "policy_revision": ctx.policy_revision,
            **outbox_fields([]),
        }
    fulfilled, event = _fulfilment(ctx, ob, report)
    return {
        **obligation_doc(fulfilled, next_step_at=None, on_time=report["on_time"]),
        "policy_revision": ctx.policy_revision,
        **outbox_fields([event]),
    }


def _resync(
    ctx: RemindersContext, doc: Doc, ob: Obligation, report: Doc | None
) -> UpdateOne | None:
    definition = obligation_definition(ob)
    update: dict[str, Any] = {}
    if any(doc.get(k) != v for k, v in definition.items()):
        update["$set"] = dict(definition)
        if doc.get("received_at") is None:
            # a moved deadline: every step again; the send log drops what was sent already
            update["$set"]["next_step_at"] = next_obligation_step_at(ob, ctx.policy, None)
            update["$set"]["policy_revision"] = ctx.policy_revision
    if doc.get("received_at") is None and report is not None:
        _, event = _fulfilment(ctx, ob, report)
        update = with_outbox(_merge(update, _fulfilment_update(report)), [event])
    return UpdateOne({"_id": ob.obligation_id}, update) if update else None


def _fulfilment(ctx: RemindersContext, ob: Obligation, report: Doc) -> tuple[Obligation, Envelope]:
    fulfilled = fulfil(ob, report["received_at"])
    status = (
        ObligationStatus.fulfilled_on_time if report["on_time"] else ObligationStatus.fulfilled_late
    )
    event = make_event(
        "obligation.fulfilled",
        obligation_facts(fulfilled, status),
        source=SOURCE,
        occurred_at=ctx.now(),
        unit_id=ob.unit_id,
        event_id=event_id(ob.obligation_id, "fulfilled"),
    )
    return fulfilled, event


async def _insert_new(ctx: RemindersContext, docs: list[Doc]) -> None:
    if not docs:
        return
    try:
        await ctx.store.obligations.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        # inserted meanwhile by another consumer: theirs stands
        if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
            raise


async def fulfil_where_reported(ctx: RemindersContext, obligations: list[Obligation]) -> None:
    """Fulfil those of these open obligations whose report is stored.

    The write is commutative (`$min` of the arrival, `$max` of on-time), so a racing
    duplicate cannot undo it; and it only applies — with its event — while it changes the
    arrival, so the same report handled twice at once (two deliveries of it in flight)
    makes one event, not the same one twice."""
    reports = await _reports_for(ctx, obligations)
    done = 0
    for ob in obligations:
        report = reports.get(report_key(ob.unit_id, ob.report_type, ob.period))
        if report is None:
            continue
        _, event = _fulfilment(ctx, ob, report)
        # only while still open (or fulfilled by a later arrival): of two replicas, or two
        # deliveries, fulfilling it at once, one announces it
        arrival = to_millis(report["received_at"])
        result = await ctx.store.obligations.update_one(
            {
                "_id": ob.obligation_id,
                "$or": [{"received_at": None}, {"received_at": {"$gt": arrival}}],
            },
            with_outbox(_fulfilment_update(report), [event]),
        )
        done += result.modified_count
    if done:
        ctx.wake_relay()


def obligation_facts(ob: Obligation, status: ObligationStatus) -> ObligationFacts:
    return ObligationFacts(
        obligation_id=ob.obligation_id,
        plan_id=ob.plan_id,
        unit_id=ob.unit_id,
        report_type=ob.report_type,
        period=ob.period,
        due_at=ob.due_at,
        recipient_unit_id=ob.recipient_unit_id,
        status=status.value,
        received_at=ob.received_at,
    )


def _fulfilment_update(report: Doc) -> dict[str, Any]:
    return {
        "$min": {"received_at": to_millis(report["received_at"])},
        "$max": {"on_time": bool(report["on_time"])},
        "$set": {"next_step_at": None},
    }


def _merge(update: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    for operator, fields in more.items():
        update.setdefault(operator, {}).update(fields)
    return update

"""The facts reminders keeps from `lhpn.events`: units, plans, reports and cases (`handle`).

Idempotent and order-tolerant: a lower revision never overwrites; a report that arrives before
its plan or unit is kept and fulfils the obligation once it is derived (`obligation_sync`).
"""

from __future__ import annotations

from pymongo.errors import DuplicateKeyError

from lhpn_shared.broker import Reject
from lhpn_shared.clock import to_millis
from lhpn_shared.contracts.cases import CaseFacts
from lhpn_shared.contracts.events import Envelope, parse_data
from lhpn_shared.contracts.plans import Plan
from lhpn_shared.contracts.reports import Report
from lhpn_shared.contracts.units import Unit
from lhpn_shared.idempotency import upsert_if_newer

from .context import BATCH, RemindersContext
from .domain.obligations import obligation_id_for
from .domain.progress import next_case_step_at
from .obligation_sync import fulfil_where_reported, sync_obligations
from .repository import (
    case_fields,
    obligation_from_doc,
    plan_fields,
    plan_from_doc,
    report_key,
    unit_fields,
    unit_from_doc,
)


async def handle(ctx: RemindersContext, envelope: Envelope) -> None:
    data = parse_data(envelope)
    if isinstance(data, Unit):
        await on_unit(ctx, data)
    elif isinstance(data, Plan):
        await on_plan(ctx, data)
    elif isinstance(data, Report):
        await on_report(ctx, data)
    elif isinstance(data, CaseFacts):
        await on_case(ctx, data)
    else:
        raise Reject(f"reminders does not consume {envelope.routing_key}")


async def on_unit(ctx: RemindersContext, unit: Unit) -> None:
    """Keep the newest revision; (re)derive the unit's obligations from what is stored, so a
    redelivered or older event still leaves everything consistent."""
    if await upsert_if_newer(ctx.store.units, unit.unit_id, unit.revision, unit_fields(unit)):
        await ctx.stored_reference()
    doc = await ctx.store.units.find_one({"_id": unit.unit_id})
    assert doc is not None
    stored = unit_from_doc(doc)
    plans = await _stored_plans(ctx)
    # another replica may have stored the units around this one: read them again
    fresh = await ctx.units_around(stored, [p.issuing_unit_id for p in plans])
    # a plan covers the units under its issuing unit: a unit arriving before its parent
    # is covered once the parent comes, so the parent's arrival re-derives its subtree too
    tree = ctx.full_tree([stored, *fresh])
    affected = [tree.units[u] for u in tree.subtree(stored.unit_id)] or [stored]
    for plan in plans:
        # the tree read above: the units in memory may be replaced meanwhile (`fresh`)
        await sync_obligations(ctx, plan, affected, tree)


async def on_plan(ctx: RemindersContext, plan: Plan) -> None:
    if await upsert_if_newer(ctx.store.plans, plan.plan_id, plan.revision, plan_fields(plan)):
        await ctx.stored_reference()
    doc = await ctx.store.plans.find_one({"_id": plan.plan_id})
    assert doc is not None
    stored = plan_from_doc(doc)
    ctx.keep_plan(stored)
    units = [unit_from_doc(d) async for d in ctx.store.units.find({}, batch_size=BATCH)]
    await sync_obligations(ctx, stored, units)


async def on_report(ctx: RemindersContext, report: Report) -> None:
    """Keep the earliest arrival of each report; fulfil the obligations it answers."""
    key = report_key(report.unit_id, report.report_type, report.period)
    update = {
        "$min": {"received_at": to_millis(report.received_at)},
        "$max": {"on_time": report.on_time},
        "$setOnInsert": {
            "unit_id": report.unit_id,
            "report_type": report.report_type,
            "period": report.period,
            "due_at": to_millis(report.due_at),
        },
    }
    try:
        await ctx.store.reports.update_one({"_id": key}, update, upsert=True)
    except DuplicateKeyError:
        # another replica inserted it at the same moment: now it exists, update it
        await ctx.store.reports.update_one({"_id": key}, update, upsert=True)
    plan_ids = [d["_id"] async for d in ctx.store.plans.find({}, {"_id": 1})]
    ids = [
        obligation_id_for(plan_id, report.report_type, report.period, report.unit_id)
        for plan_id in plan_ids
    ]
    query = {"_id": {"$in": ids}, "received_at": None}
    docs = [d async for d in ctx.store.obligations.find(query, {"outbox": 0})]
    await fulfil_where_reported(ctx, [obligation_from_doc(d) for d in docs])


async def on_case(ctx: RemindersContext, facts: CaseFacts) -> None:
    """The newest facts of a case replace its deadlines: a deadline no longer listed, or a
    closed case, gets nothing more."""
    case = CaseFacts.model_validate(facts.model_dump(include=set(CaseFacts.model_fields)))
    next_step_at = next_case_step_at(case, ctx.case_policy, None)
    async with ctx.agenda.scheduling([next_step_at]):
        await upsert_if_newer(
            ctx.store.cases,
            str(case.case_id),
            case.revision,
            {**case_fields(case, next_step_at), "policy_revision": ctx.policy_revision},
        )


async def _stored_plans(ctx: RemindersContext) -> list[Plan]:
    return [plan_from_doc(d) async for d in ctx.store.plans.find({})]

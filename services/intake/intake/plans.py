"""Units and plans: a unit stored or changed (its changes over time go through
`units.reorganise`), and a plan published or given a new revision."""

from __future__ import annotations

from pymongo.errors import DuplicateKeyError

from lhpn_shared.access import WRITE, require_unit
from lhpn_shared.contracts.plans import Plan
from lhpn_shared.contracts.units import Unit
from lhpn_shared.http import FieldProblem
from lhpn_shared.outbox import outbox_fields, with_outbox
from lhpn_shared.principal import Principal

from .context import IntakeContext
from .errors import Conflict
from .repository import plan_from_doc, plan_to_doc


async def upsert_unit(ctx: IntakeContext, unit: Unit, actor: str = "system:intake") -> bool:
    """Store the unit if new, or give it this state if it differs (revision + 1), and
    announce it; False if unchanged. Changes over time go through `units.reorganise`."""
    outcome = await ctx.units.load_units([unit], actor, replace=True)
    return outcome.change_id is not None


async def publish_plan(
    ctx: IntakeContext, plan: Plan, principal: Principal | None = None
) -> tuple[Plan, bool]:
    """Publish a plan, or a new revision of it when its content changed. `principal`: who
    publishes it over the API (None: the default data loaded at start)."""
    if principal is not None and plan.issuing_unit_id in ctx.tree:
        require_unit(principal, plan.issuing_unit_id, ctx.tree, WRITE)
    if plan.issuing_unit_id not in ctx.tree:
        raise FieldProblem([(("issuing_unit_id",), "Không có đơn vị ban hành này.")])
    existing = await ctx.store.plans.find_one({"_id": plan.plan_id})
    now = ctx.now()
    audit = (
        [
            ctx.audit.entry(
                principal,
                "plans.publish",
                entity_type="plan",
                entity_id=plan.plan_id,
                unit_id=plan.issuing_unit_id,
            )
        ]
        if principal is not None
        else []
    )
    if existing is not None:
        current = plan_from_doc(existing)
        same = {"revision", "published_at"}
        if current.model_dump(exclude=same) == plan.model_dump(exclude=same):
            return current, False
        plan = plan.model_copy(update={"revision": current.revision + 1, "published_at": now})
        event = ctx.event("plan.published", plan, plan.issuing_unit_id)
        result = await ctx.store.plans.update_one(
            {"_id": plan.plan_id, "revision": current.revision},
            with_outbox({"$set": plan_to_doc(plan)}, [event], audit),
        )
        if result.matched_count == 0:
            raise Conflict("Kế hoạch vừa được người khác cập nhật, vui lòng thử lại.")
    else:
        plan = plan.model_copy(update={"revision": 1, "published_at": now})
        event = ctx.event("plan.published", plan, plan.issuing_unit_id)
        try:
            await ctx.store.plans.insert_one(
                {"_id": plan.plan_id, **plan_to_doc(plan), **outbox_fields([event], audit)}
            )
        except DuplicateKeyError as exc:
            raise Conflict("Kế hoạch vừa được người khác tạo, vui lòng thử lại.") from exc
    ctx.wake(ctx.store.plans.name)
    await ctx.load_plans()
    return plan, True

"""Intake's HTTP routes (SPEC §9.2). Thin: parse, authorise, call one use case, answer."""

from typing import Annotated, Generic, TypeVar
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, ValidationError

from lhpn_shared.access import (
    BODY,
    ENTITY,
    EVERYONE,
    QUERY,
    READ,
    RECORDS,
    WRITE,
    Guard,
    Permission,
)
from lhpn_shared.auth import Principal, Role
from lhpn_shared.broker import Reject, describe_validation_error
from lhpn_shared.contracts.activities import Activity, ActivityFields, ActivityKind
from lhpn_shared.contracts.events import INBOUND_TYPES, Envelope
from lhpn_shared.contracts.plans import Plan
from lhpn_shared.contracts.reports import Report
from lhpn_shared.contracts.units import Unit
from lhpn_shared.http import CODE, QueryDate

from .models import ReportSubmission
from .service import Intake

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class EventAccepted(BaseModel):
    event_id: UUID
    status: str


# ---- who may call what (SPEC §9.3): read by the guard, the access tests and the OpenAPI -------
UNITS_READ = Permission("units.read", READ, EVERYONE)
PLANS_READ = Permission("plans.read", READ, EVERYONE)
PLANS_PUBLISH = Permission(
    "plans.publish",
    WRITE,
    frozenset({Role.admin, Role.province_staff}),
    (BODY,),
    unit_fields=("issuing_unit_id",),
    refusal="Chỉ cán bộ cấp tỉnh được ban hành kế hoạch.",
)
ACTIVITIES_RECORD = Permission("activities.record", WRITE, RECORDS, (BODY,))
ACTIVITIES_LIST = Permission("activities.list", READ, RECORDS, (QUERY,))
ACTIVITIES_READ = Permission("activities.read", READ, RECORDS, (ENTITY,), entity="activity_id")
ACTIVITIES_CORRECT = Permission(
    "activities.correct", WRITE, RECORDS, (ENTITY, BODY), entity="activity_id"
)
ACTIVITIES_VOID = Permission("activities.void", WRITE, RECORDS, (ENTITY,), entity="activity_id")
REPORTS_SUBMIT = Permission("reports.submit", WRITE, RECORDS, (BODY,))
REPORTS_LIST = Permission("reports.list", READ, RECORDS, (QUERY,))
REPORTS_READ = Permission("reports.read", READ, RECORDS, (ENTITY,), entity="report_id")
EVENTS_POST = Permission(
    "events.post", WRITE, RECORDS, (BODY,), unit_fields=("unit_id", "data.unit_id")
)


def scope_units(svc: Intake, caller: Principal, unit_id: str | None) -> list[str]:
    """The subtree a list reads: `unit_id`'s (checked by the guard), else the caller's own;
    everything for an admin without a filter."""
    root = unit_id or caller.unit_id
    if root is None:
        return list(svc.tree.units)
    if root not in svc.tree:
        raise HTTPException(404, detail=f"Không có đơn vị mã '{root}'.")
    return svc.tree.subtree(root)


def build_router(guard: Guard) -> APIRouter:
    router = APIRouter(prefix="/api/v1")

    async def intake(request: Request) -> Intake:
        svc: Intake = request.app.state.intake
        return svc

    Svc = Annotated[Intake, Depends(intake)]

    # ---- units --------------------------------------------------------------------------------

    @router.get("/units", response_model=Page[Unit], tags=["units"])
    async def list_units(
        caller: Annotated[Principal, guard(UNITS_READ)],
        svc: Svc,
        unit_id: Annotated[str | None, Query(description="root of the subtree")] = None,
        level: str | None = None,
        as_of: Annotated[
            QueryDate | None,
            Query(description="only the units valid that day, with that day's names"),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
        cursor: str | None = None,
    ) -> Page[Unit]:
        tree = svc.tree.as_of(as_of) if as_of is not None else svc.tree
        if unit_id is not None and unit_id not in tree:
            raise HTTPException(404, detail=f"Không có đơn vị mã '{unit_id}'.")
        ids = tree.subtree(unit_id) if unit_id else sorted(tree.units)
        units = [tree.units[i] for i in sorted(ids) if not level or tree.units[i].level == level]
        if cursor:
            units = [u for u in units if u.unit_id > cursor]
        page = units[:limit]
        return Page(items=page, next_cursor=page[-1].unit_id if len(units) > limit else None)

    @router.get("/units/{unit_id}", response_model=Unit, tags=["units"])
    async def get_unit(
        unit_id: str, caller: Annotated[Principal, guard(UNITS_READ)], svc: Svc
    ) -> Unit:
        unit = svc.tree.get(unit_id)
        if unit is None:
            raise HTTPException(404, detail=f"Không có đơn vị mã '{unit_id}'.")
        return unit

    # ---- plans --------------------------------------------------------------------------------

    @router.get("/plans", response_model=Page[Plan], tags=["plans"])
    async def list_plans(
        caller: Annotated[Principal, guard(PLANS_READ)], svc: Svc, year: int | None = None
    ) -> Page[Plan]:
        plans = sorted(svc.plans, key=lambda p: (p.year, p.plan_id))
        return Page(items=[p for p in plans if year is None or p.year == year])

    @router.get("/plans/{plan_id}", response_model=Plan, tags=["plans"])
    async def get_plan(
        plan_id: str, caller: Annotated[Principal, guard(PLANS_READ)], svc: Svc
    ) -> Plan:
        plan = next((p for p in svc.plans if p.plan_id == plan_id), None)
        if plan is None:
            raise HTTPException(404, detail=f"Không có kế hoạch '{plan_id}'.")
        return plan

    @router.post("/plans", response_model=Plan, tags=["plans"])
    async def publish_plan(
        plan: Plan,
        caller: Annotated[Principal, guard(PLANS_PUBLISH)],
        svc: Svc,
        response: Response,
    ) -> Plan:
        stored, created = await svc.publish_plan(plan, caller)
        response.status_code = 201 if created else 200
        return stored

    # ---- activities ---------------------------------------------------------------------------

    class ActivityIn(ActivityFields):
        activity_id: UUID | None = None

    @router.post("/activities", response_model=Activity, tags=["activities"])
    async def record_activity(
        body: ActivityIn,
        caller: Annotated[Principal, guard(ACTIVITIES_RECORD)],
        svc: Svc,
        response: Response,
    ) -> Activity:
        fields = ActivityFields.model_validate(body.model_dump(exclude={"activity_id"}))
        activity, created = await svc.record_activity(fields, caller, activity_id=body.activity_id)
        response.status_code = 201 if created else 200
        return activity

    @router.get("/activities", response_model=Page[Activity], tags=["activities"])
    async def list_activities(
        caller: Annotated[Principal, guard(ACTIVITIES_LIST)],
        svc: Svc,
        unit_id: Annotated[str | None, Query(description="root of the subtree")] = None,
        kind: ActivityKind | None = None,
        from_on: QueryDate | None = None,
        to_on: QueryDate | None = None,
        include_voided: bool = False,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: str | None = None,
    ) -> Page[Activity]:
        units = scope_units(svc, caller, unit_id)
        items, nxt = await svc.list_activities(
            units,
            kind=kind.value if kind else None,
            from_on=from_on.isoformat() if from_on else None,
            to_on=to_on.isoformat() if to_on else None,
            include_voided=include_voided,
            limit=limit,
            cursor=cursor,
        )
        return Page(items=items, next_cursor=nxt)

    @router.get("/activities/{activity_id}", response_model=Activity, tags=["activities"])
    async def get_activity(
        activity_id: UUID, caller: Annotated[Principal, guard(ACTIVITIES_READ)], svc: Svc
    ) -> Activity:
        return await svc.get_activity(activity_id)

    @router.put("/activities/{activity_id}", response_model=Activity, tags=["activities"])
    async def correct_activity(
        activity_id: UUID,
        body: ActivityFields,
        caller: Annotated[Principal, guard(ACTIVITIES_CORRECT)],
        svc: Svc,
    ) -> Activity:
        return await svc.correct_activity(activity_id, body, caller)

    @router.delete("/activities/{activity_id}", response_model=Activity, tags=["activities"])
    async def void_activity(
        activity_id: UUID,
        caller: Annotated[Principal, guard(ACTIVITIES_VOID)],
        svc: Svc,
        reason: Annotated[str, Query(max_length=2000)] = "",
    ) -> Activity:
        return await svc.void_activity(activity_id, caller, reason=reason)

    # ---- reports ------------------------------------------------------------------------------

    @router.post("/reports", response_model=Report, tags=["reports"])
    async def submit_report(
        body: ReportSubmission,
        caller: Annotated[Principal, guard(REPORTS_SUBMIT)],
        svc: Svc,
        response: Response,
    ) -> Report:
        report, changed = await svc.submit_report(body, caller)
        response.status_code = 201 if changed and report.revision == 1 else 200
        return report

    @router.get("/reports", response_model=Page[Report], tags=["reports"])
    async def list_reports(
        caller: Annotated[Principal, guard(REPORTS_LIST)],
        svc: Svc,
        unit_id: str | None = None,
        report_type: Annotated[str | None, Query(pattern=CODE)] = None,
        period: Annotated[str | None, Query(pattern=CODE)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: str | None = None,
    ) -> Page[Report]:
        items, nxt = await svc.list_reports(
            scope_units(svc, caller, unit_id),
            report_type=report_type,
            period=period,
            limit=limit,
            cursor=cursor,
        )
        return Page(items=items, next_cursor=nxt)

    @router.get("/reports/{report_id}", response_model=Report, tags=["reports"])
    async def get_report(
        report_id: UUID, caller: Annotated[Principal, guard(REPORTS_READ)], svc: Svc
    ) -> Report:
        return await svc.get_report(report_id)

    # ---- inbound events over HTTP -------------------------------------------------------------

    @router.post("/events", response_model=EventAccepted, status_code=202, tags=["events"])
    async def post_event(
        envelope: Envelope, caller: Annotated[Principal, guard(EVENTS_POST)], svc: Svc
    ) -> EventAccepted:
        if (envelope.type, envelope.version) not in INBOUND_TYPES - {("case.opened", 1)}:
            raise HTTPException(
                422,
                detail=f"Intake không nhận sự kiện {envelope.routing_key} "
                "(nhận: activity.recorded.v1, activity.voided.v1, report.submitted.v1).",
            )
        try:
            outcome = await svc.handle_inbound(envelope, caller)
        except Reject as exc:
            raise HTTPException(422, detail=str(exc)) from exc
        except ValidationError as exc:
            raise HTTPException(422, detail=describe_validation_error(exc)) from exc
        return EventAccepted(event_id=envelope.event_id, status=outcome)

    return router

"""Intake's HTTP routes (SPEC §9.2). Thin: parse, authorise, call one use case, answer."""

from datetime import date
from typing import Annotated, Generic, TypeVar
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, ValidationError

from lhpn_shared.auth import (
    Authenticator,
    Principal,
    Role,
    issue_token,
    require_admin,
    require_read,
    require_write,
)
from lhpn_shared.broker import Reject, describe_validation_error
from lhpn_shared.contracts.activities import Activity, ActivityFields, ActivityKind
from lhpn_shared.contracts.events import INBOUND_TYPES, Envelope
from lhpn_shared.contracts.plans import Plan
from lhpn_shared.contracts.reports import Report
from lhpn_shared.contracts.units import Unit
from lhpn_shared.settings import ServiceSettings

from .service import Intake, ReportSubmission
from .users import NewUser, UserOut, Users

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int
    role: Role
    unit_id: str | None


class EventAccepted(BaseModel):
    event_id: UUID
    status: str


def build_router(settings: ServiceSettings, auth: Authenticator) -> APIRouter:
    router = APIRouter(prefix="/api/v1")
    Caller = Annotated[Principal, Depends(auth)]

    def intake(request: Request) -> Intake:
        svc: Intake = request.app.state.intake
        return svc

    def users(request: Request) -> Users:
        u: Users = request.app.state.users
        return u

    Svc = Annotated[Intake, Depends(intake)]

    def scope_units(svc: Intake, caller: Principal, unit_id: str | None) -> list[str]:
        root = unit_id or caller.unit_id
        if root is None:  # admin without a filter: everything
            return list(svc.tree.units)
        if root not in svc.tree:
            raise HTTPException(404, detail=f"Không có đơn vị mã '{root}'.")
        require_read(caller, root, svc.tree)
        return svc.tree.subtree(root)

    # ---- auth ---------------------------------------------------------------------------------

    @router.post("/auth/token", response_model=TokenOut, tags=["auth"])
    async def token(
        form: Annotated[OAuth2PasswordRequestForm, Depends()],
        request: Request,
        accounts: Annotated[Users, Depends(users)],
    ) -> TokenOut:
        principal = await accounts.authenticate(form.username, form.password)
        if principal is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="Sai tên đăng nhập hoặc mật khẩu.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        tok, ttl = issue_token(settings, principal, request.app.state.clock.now())
        return TokenOut(
            access_token=tok, expires_in=ttl, role=principal.role, unit_id=principal.unit_id
        )

    @router.post("/users", response_model=UserOut, status_code=201, tags=["auth"])
    async def create_user(
        user: NewUser, caller: Caller, svc: Svc, accounts: Annotated[Users, Depends(users)]
    ) -> UserOut:
        require_admin(caller)
        if user.role not in (Role.admin, Role.viewer) and user.unit_id not in svc.tree:
            raise HTTPException(422, detail=f"Không có đơn vị mã '{user.unit_id}'.")
        if not await accounts.create(user, svc.clock.now()):
            raise HTTPException(409, detail=f"Tên đăng nhập '{user.username}' đã tồn tại.")
        return UserOut(username=user.username, role=user.role, unit_id=user.unit_id)

    # ---- units --------------------------------------------------------------------------------

    @router.get("/units", response_model=Page[Unit], tags=["units"])
    async def list_units(
        caller: Caller,
        svc: Svc,
        unit_id: Annotated[str | None, Query(description="root of the subtree")] = None,
        level: str | None = None,
        as_of: Annotated[
            date | None, Query(description="only the units valid that day, with that day's names")
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
    async def get_unit(unit_id: str, caller: Caller, svc: Svc) -> Unit:
        unit = svc.tree.get(unit_id)
        if unit is None:
            raise HTTPException(404, detail=f"Không có đơn vị mã '{unit_id}'.")
        return unit

    # ---- plans --------------------------------------------------------------------------------

    @router.get("/plans", response_model=Page[Plan], tags=["plans"])
    async def list_plans(caller: Caller, svc: Svc, year: int | None = None) -> Page[Plan]:
        plans = sorted(svc.plans, key=lambda p: (p.year, p.plan_id))
        return Page(items=[p for p in plans if year is None or p.year == year])

    @router.get("/plans/{plan_id}", response_model=Plan, tags=["plans"])
    async def get_plan(plan_id: str, caller: Caller, svc: Svc) -> Plan:
        plan = next((p for p in svc.plans if p.plan_id == plan_id), None)
        if plan is None:
            raise HTTPException(404, detail=f"Không có kế hoạch '{plan_id}'.")
        return plan

    @router.post("/plans", response_model=Plan, tags=["plans"])
    async def publish_plan(plan: Plan, caller: Caller, svc: Svc, response: Response) -> Plan:
        if caller.role not in (Role.admin, Role.province_staff):
            raise HTTPException(403, detail="Chỉ cán bộ cấp tỉnh được ban hành kế hoạch.")
        if plan.issuing_unit_id in svc.tree:
            require_write(caller, plan.issuing_unit_id, svc.tree)
        stored, created = await svc.publish_plan(plan)
        response.status_code = 201 if created else 200
        return stored

    # ---- activities ---------------------------------------------------------------------------

    class ActivityIn(ActivityFields):
        activity_id: UUID | None = None

    @router.post("/activities", response_model=Activity, tags=["activities"])
    async def record_activity(
        body: ActivityIn, caller: Caller, svc: Svc, response: Response
    ) -> Activity:
        if body.unit_id in svc.tree:
            require_write(caller, body.unit_id, svc.tree)
        fields = ActivityFields.model_validate(body.model_dump(exclude={"activity_id"}))
        activity, created = await svc.record_activity(
            fields, caller.subject, activity_id=body.activity_id
        )
        response.status_code = 201 if created else 200
        return activity

    @router.get("/activities", response_model=Page[Activity], tags=["activities"])
    async def list_activities(
        caller: Caller,
        svc: Svc,
        unit_id: Annotated[str | None, Query(description="root of the subtree")] = None,
        kind: ActivityKind | None = None,
        from_on: date | None = None,
        to_on: date | None = None,
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

    async def readable_activity(activity_id: UUID, caller: Principal, svc: Intake) -> Activity:
        activity = await svc.get_activity(activity_id)
        require_read(caller, activity.unit_id, svc.tree)
        return activity

    @router.get("/activities/{activity_id}", response_model=Activity, tags=["activities"])
    async def get_activity(activity_id: UUID, caller: Caller, svc: Svc) -> Activity:
        return await readable_activity(activity_id, caller, svc)

    @router.put("/activities/{activity_id}", response_model=Activity, tags=["activities"])
    async def correct_activity(
        activity_id: UUID, body: ActivityFields, caller: Caller, svc: Svc
    ) -> Activity:
        current = await readable_activity(activity_id, caller, svc)
        require_write(caller, current.unit_id, svc.tree)
        if body.unit_id in svc.tree:
            require_write(caller, body.unit_id, svc.tree)
        return await svc.correct_activity(activity_id, body, caller.subject)

    @router.delete("/activities/{activity_id}", response_model=Activity, tags=["activities"])
    async def void_activity(
        activity_id: UUID, caller: Caller, svc: Svc, reason: str = ""
    ) -> Activity:
        current = await readable_activity(activity_id, caller, svc)
        require_write(caller, current.unit_id, svc.tree)
        return await svc.void_activity(activity_id, caller.subject, reason=reason)

    # ---- reports ------------------------------------------------------------------------------

    @router.post("/reports", response_model=Report, tags=["reports"])
    async def submit_report(
        body: ReportSubmission, caller: Caller, svc: Svc, response: Response
    ) -> Report:
        if body.unit_id in svc.tree:
            require_write(caller, body.unit_id, svc.tree)
        report, changed = await svc.submit_report(body, caller.subject)
        response.status_code = 201 if changed and report.revision == 1 else 200
        return report

    @router.get("/reports", response_model=Page[Report], tags=["reports"])
    async def list_reports(
        caller: Caller,
        svc: Svc,
        unit_id: str | None = None,
        report_type: str | None = None,
        period: str | None = None,
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
    async def get_report(report_id: UUID, caller: Caller, svc: Svc) -> Report:
        report = await svc.get_report(report_id)
        require_read(caller, report.unit_id, svc.tree)
        return report

    # ---- inbound events over HTTP -------------------------------------------------------------

    @router.post("/events", response_model=EventAccepted, status_code=202, tags=["events"])
    async def post_event(envelope: Envelope, caller: Caller, svc: Svc) -> EventAccepted:
        if caller.role is Role.viewer:
            raise HTTPException(403, detail="Tài khoản xem không được gửi sự kiện.")
        if (envelope.type, envelope.version) not in INBOUND_TYPES - {("case.opened", 1)}:
            raise HTTPException(
                422,
                detail=f"Intake không nhận sự kiện {envelope.routing_key} "
                "(nhận: activity.recorded.v1, activity.voided.v1, report.submitted.v1).",
            )
        if envelope.unit_id and envelope.unit_id in svc.tree:
            require_write(caller, envelope.unit_id, svc.tree)
        data_unit = envelope.data.get("unit_id")
        if isinstance(data_unit, str) and data_unit in svc.tree:
            require_write(caller, data_unit, svc.tree)
        try:
            outcome = await svc.handle_inbound(envelope, caller)
        except Reject as exc:
            raise HTTPException(422, detail=str(exc)) from exc
        except ValidationError as exc:
            raise HTTPException(422, detail=describe_validation_error(exc)) from exc
        return EventAccepted(event_id=envelope.event_id, status=outcome)

    return router

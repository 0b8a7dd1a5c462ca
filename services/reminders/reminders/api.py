"""Reminders' HTTP routes (SPEC §9.2). Thin: parse, authorise, call one use case, answer."""

from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import AwareDatetime, BaseModel, Field

from lhpn_shared.access import (
    ADMINS,
    PATH,
    QUERY,
    READ,
    RECORDS,
    WRITE,
    AccessDenied,
    Guard,
    Permission,
)
from lhpn_shared.audit import AuditLog
from lhpn_shared.auth import Principal, Role
from lhpn_shared.http import CODE, FieldProblem
from lhpn_shared.mongo import Doc

from .contacts import Contacts
from .dispatch import notification_id
from .domain.obligations import ObligationStatus
from .domain.policy import ReminderStep
from .domain.policy_rules import (
    CaseSteps,
    PolicyStep,
    ReportSteps,
    checked_policy,
    offset_text,
)
from .policy_store import StalePolicy, StoredPolicy
from .service import Reminders
from .sweep import Sweeper

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class ObligationOut(BaseModel):
    obligation_id: str
    plan_id: str
    unit_id: str
    unit_level: str
    report_type: str
    period: str
    due_at: datetime
    recipient_unit_id: str | None
    status: ObligationStatus
    received_at: datetime | None = None
    on_time: bool | None = None
    overdue_at: datetime | None = None
    """When a sweep first found it overdue (and published `obligation.overdue`)."""
    next_step_at: datetime | None = None
    """When a sweep will next have something to do for it."""


class NotificationOut(BaseModel):
    """One delivery: a send (subject, step, recipient) on one channel."""

    notification_id: str
    unit_id: str
    channel: str
    step: str
    subject_ref: str
    kind: str
    status: str
    attempts: int
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    sent_at: datetime | None = None
    claimed_at: datetime
    to: list[str] | None = None
    url: str | None = None


class SweepIn(BaseModel):
    as_of: AwareDatetime | None = None
    """Default: now."""


class SweepOut(BaseModel):
    sweep_id: str
    as_of: datetime
    obligations_examined: int
    cases_examined: int
    newly_overdue: int
    planned: int
    already_claimed: int
    notifications: list[NotificationOut]
    """What this sweep sent (or tried to): one item per send and channel."""


class ContactsOut(BaseModel):
    unit_id: str
    emails: list[str]
    webhook_url: str | None
    has_webhook_secret: bool


class ReminderPolicyOut(BaseModel):
    """The policy every sweep uses: steps relative to each due instant (offsets as ISO 8601
    durations, negative before it)."""

    revision: int
    """0: the settings' policy, never changed here; a PUT must send the revision it read"""
    reports: ReportSteps
    cases: CaseSteps
    updated_at: datetime | None = None
    updated_by: str | None = None


class ReminderPolicyIn(BaseModel):
    revision: Annotated[
        int, Field(ge=0, strict=True, description="the revision read before editing")
    ]
    reports: ReportSteps
    cases: CaseSteps


def _steps(steps: tuple[ReminderStep, ...]) -> list[PolicyStep]:
    return [
        PolicyStep(step=s.step, offset=offset_text(s.offset), audience=s.audience) for s in steps
    ]


def policy_out(stored: StoredPolicy) -> ReminderPolicyOut:
    return ReminderPolicyOut(
        revision=stored.revision,
        reports=ReportSteps(
            steps=_steps(stored.reports.steps),
            by_report_type={t: _steps(s) for t, s in sorted(stored.reports.by_report_type.items())},
        ),
        cases=CaseSteps(steps=_steps(stored.cases.steps)),
        updated_at=stored.updated_at,
        updated_by=stored.updated_by,
    )


def notification_items(send: Doc) -> list[NotificationOut]:
    return [
        NotificationOut(
            notification_id=notification_id(send["_id"], channel),
            unit_id=send["recipient_unit_id"],
            channel=channel,
            step=send["step"],
            subject_ref=send["subject_ref"],
            kind=send["kind"],
            status=entry["status"],
            attempts=entry["attempts"],
            last_error=entry.get("last_error"),
            next_attempt_at=entry.get("next_attempt_at"),
            sent_at=entry.get("sent_at"),
            claimed_at=send["claimed_at"],
            to=entry.get("to"),
            url=entry.get("url"),
        )
        for channel, entry in sorted(send["deliveries"].items())
    ]


# ---- who may call what (SPEC §9.3): read by the guard, the access tests and the OpenAPI -------
OBLIGATIONS_LIST = Permission("obligations.list", READ, RECORDS, (QUERY,))
NOTIFICATIONS_LIST = Permission("notifications.list", READ, RECORDS, (QUERY,))
CONTACTS_WRITE = Permission("contacts.write", WRITE, RECORDS, (PATH,))
SWEEPS_RUN = Permission("sweeps.run", WRITE, ADMINS)
REMINDER_POLICY_READ = Permission(
    "reminder_policy.read",
    READ,
    frozenset({Role.admin, Role.province_staff}),
    refusal="Chỉ quản trị viên và cán bộ cấp tỉnh được xem chính sách nhắc hạn.",
)
REMINDER_POLICY_WRITE = Permission("reminder_policy.write", WRITE, ADMINS)


def build_router(guard: Guard) -> APIRouter:
    router = APIRouter(prefix="/api/v1")

    async def reminders(request: Request) -> Reminders:
        svc: Reminders = request.app.state.reminders
        await svc.fresh()  # units another replica stored since: subtrees and access checks
        return svc

    async def sweeper(request: Request) -> Sweeper:
        s: Sweeper = request.app.state.sweeper
        return s

    async def audit_log(request: Request) -> AuditLog:
        log: AuditLog = request.app.state.audit
        return log

    Svc = Annotated[Reminders, Depends(reminders)]
    Audit = Annotated[AuditLog, Depends(audit_log)]

    def scope_units(svc: Reminders, caller: Principal, unit_id: str | None) -> list[str] | None:
        """The subtree to read (`unit_id`'s, checked by the guard, else the caller's own);
        None: everything (an admin without a filter)."""
        root = unit_id or caller.unit_id
        if root is None:
            if not caller.is_admin:
                raise AccessDenied("Tài khoản chưa gắn với đơn vị nào.")
            return None
        if root not in svc.tree:
            raise HTTPException(404, detail=f"Không có đơn vị mã '{root}'.")
        return svc.tree.subtree(root)

    @router.get("/obligations", response_model=Page[ObligationOut], tags=["obligations"])
    async def list_obligations(
        caller: Annotated[Principal, guard(OBLIGATIONS_LIST)],
        svc: Svc,
        unit_id: Annotated[str | None, Query(description="root of the subtree")] = None,
        report_type: Annotated[str | None, Query(pattern=CODE)] = None,
        period: Annotated[str | None, Query(pattern=CODE)] = None,
        status: ObligationStatus | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: str | None = None,
    ) -> Page[ObligationOut]:
        docs, nxt = await svc.list_obligations(
            scope_units(svc, caller, unit_id),
            report_type=report_type,
            period=period,
            status=status,
            limit=limit,
            cursor=cursor,
        )
        items = [ObligationOut(obligation_id=d["_id"], **_fields(d)) for d in docs]
        return Page(items=items, next_cursor=nxt)

    @router.get("/notifications", response_model=Page[NotificationOut], tags=["notifications"])
    async def list_notifications(
        caller: Annotated[Principal, guard(NOTIFICATIONS_LIST)],
        svc: Svc,
        unit_id: Annotated[str | None, Query(description="recipient subtree")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: str | None = None,
    ) -> Page[NotificationOut]:
        """Deliveries with their status, attempts and last error. `limit` counts sends (a
        send has one item per channel)."""
        docs, nxt = await svc.list_sends(
            scope_units(svc, caller, unit_id), limit=limit, cursor=cursor
        )
        return Page(items=[n for d in docs for n in notification_items(d)], next_cursor=nxt)

    @router.put("/contacts/{unit_id}", response_model=ContactsOut, tags=["contacts"])
    async def put_contacts(
        unit_id: Annotated[str, Path(max_length=32)],
        body: Contacts,
        caller: Annotated[Principal, guard(CONTACTS_WRITE)],
        svc: Svc,
        audit: Audit,
    ) -> ContactsOut:
        if unit_id not in svc.tree:
            raise HTTPException(404, detail=f"Không có đơn vị mã '{unit_id}'.")
        if body.webhook_url and not body.webhook_secret:
            raise FieldProblem(
                [(("webhook_secret",), "Cần khóa bí mật (ít nhất 16 ký tự) để ký webhook.")]
            )
        stored = await svc.set_contacts(
            unit_id,
            body,
            caller.subject,
            lambda: [
                audit.entry(
                    caller,
                    "contacts.write",
                    entity_type="contacts",
                    entity_id=unit_id,
                    unit_id=unit_id,
                )
            ],
        )
        return ContactsOut(
            unit_id=unit_id,
            emails=stored.emails,
            webhook_url=stored.webhook_url,
            has_webhook_secret=bool(stored.webhook_secret),
        )

    @router.post("/sweeps", response_model=SweepOut, tags=["sweeps"])
    async def run_sweep(
        body: SweepIn,
        caller: Annotated[Principal, guard(SWEEPS_RUN)],
        svc: Svc,
        sweeps: Annotated[Sweeper, Depends(sweeper)],
        audit: Audit,
    ) -> SweepOut:
        """Run one sweep as of an instant and deliver what it claimed (admin)."""
        result = await sweeps.run(body.as_of or svc.now())
        await audit.record(caller, "sweeps.run", entity_type="sweep", entity_id=result.sweep_id)
        return SweepOut(
            sweep_id=result.sweep_id,
            as_of=result.as_of,
            obligations_examined=result.obligations_examined,
            cases_examined=result.cases_examined,
            newly_overdue=result.newly_overdue,
            planned=result.planned,
            already_claimed=result.already_claimed,
            notifications=[n for d in result.claimed for n in notification_items(d)],
        )

    @router.get("/reminder-policy", response_model=ReminderPolicyOut, tags=["reminder policy"])
    async def get_reminder_policy(
        caller: Annotated[Principal, guard(REMINDER_POLICY_READ)], svc: Svc
    ) -> ReminderPolicyOut:
        """The policy as stored now (the settings' until an administrator changes it)."""
        return policy_out(await svc.policy_book.read())

    @router.put(
        "/reminder-policy",
        response_model=ReminderPolicyOut,
        tags=["reminder policy"],
        responses={409: {"description": "the policy changed since `revision` was read"}},
    )
    async def put_reminder_policy(
        body: ReminderPolicyIn,
        caller: Annotated[Principal, guard(REMINDER_POLICY_WRITE)],
        svc: Svc,
        audit: Audit,
    ) -> ReminderPolicyOut:
        """Replace the policy (admin). It applies from the next sweep to the obligations and
        cases still open: steps already sent stay sent, steps still ahead follow the new
        policy, and a new step whose instant has already passed is not sent late."""
        checked = checked_policy(body.reports, body.cases)
        if isinstance(checked, list):
            raise FieldProblem(checked)
        reports, cases = checked
        record = audit.entry(
            caller,
            "reminder_policy.write",
            entity_type="reminder_policy",
            entity_id=str(body.revision + 1),
        )
        try:
            stored = await svc.policy_book.replace(
                body.revision, reports, cases, caller.subject, svc.now(), [record]
            )
        except StalePolicy as exc:
            raise HTTPException(
                409,
                detail=f"Chính sách nhắc hạn đã được thay đổi (nay là phiên bản {exc.current}) "
                f"sau khi bạn mở nó (phiên bản {body.revision}). Hãy tải lại và sửa lại.",
            ) from None
        svc.use_policy(stored)
        svc.wake_relay()  # the audit record waits in the policy's document
        return policy_out(stored)

    return router


def _fields(doc: Doc) -> dict[str, Any]:
    return {k: doc.get(k) for k in ObligationOut.model_fields if k != "obligation_id"}

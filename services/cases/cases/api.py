"""The cases service's HTTP routes (SPEC §9.2). Thin: parse, call one use case, answer.

Who may see or change what is decided by the use cases (`service.Cases`), which also write the
audit records: no route can reach personal data around them.
"""

from typing import Annotated, Generic, TypeVar
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from lhpn_shared.access import (
    BODY,
    ENTITY,
    HOLDER,
    QUERY,
    READ,
    RECORDS,
    STAFF,
    WRITE,
    Guard,
    Permission,
)
from lhpn_shared.auth import Principal, Role
from lhpn_shared.contracts.cases import CaseKind, CaseStatus, CaseTopic
from lhpn_shared.http import QueryDate

from .domain.visibility import LIST_NOTICE
from .models import (
    CaseListItem,
    CaseOut,
    ExtensionRequest,
    NewCase,
    ReferralUpRequest,
    TransitionRequest,
)
from .reading import CaseFilter
from .service import Cases

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class CasePage(Page[CaseListItem]):
    personal_data_notice: str = Field(
        default=LIST_NOTICE, description="lists never carry personal data; this says so"
    )


# ---- who may call what (SPEC §6, §9.3): the guard checks the unit subtree; the use cases then
# decide what of a case (facts, personal data) the caller sees and audit every such read.
CASES_OPEN = Permission("cases.open", WRITE, STAFF | {Role.system}, (BODY,))
CASES_LIST = Permission("cases.list", READ, RECORDS, (QUERY,))
# staff above a case, admins and systems read its facts; only the unions holding it handle it
CASES_READ = Permission("cases.read", READ, RECORDS, (ENTITY,), entity="case_id")
NOT_HOLDER = (
    "Hồ sơ thuộc đơn vị {owner} và chưa được chuyển lên đơn vị {unit}; chỉ cán bộ Hội của đơn "
    "vị đang giữ hồ sơ được xử lý hồ sơ."
)


def handling(name: str) -> Permission:
    return Permission(
        name, WRITE, STAFF, (ENTITY, HOLDER), entity="case_id", holder_refusal=NOT_HOLDER
    )


CASES_TRANSITION = handling("cases.transition")
CASES_EXTEND = handling("cases.extend")
CASES_REFER = handling("cases.refer")


def build_router(guard: Guard) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["cases"])

    async def cases(request: Request) -> Cases:
        svc: Cases = request.app.state.cases
        return svc

    Svc = Annotated[Cases, Depends(cases)]

    @router.post("/cases", response_model=CaseOut)
    async def open_case(
        body: NewCase,
        caller: Annotated[Principal, guard(CASES_OPEN)],
        svc: Svc,
        response: Response,
    ) -> CaseOut:
        case, created = await svc.open_case(body, caller)
        response.status_code = 201 if created else 200
        return case

    @router.get("/cases", response_model=CasePage)
    async def list_cases(
        caller: Annotated[Principal, guard(CASES_LIST)],
        svc: Svc,
        unit_id: Annotated[str | None, Query(description="root of the subtree")] = None,
        kind: CaseKind | None = None,
        topic: CaseTopic | None = None,
        status: CaseStatus | None = None,
        overdue: Annotated[bool | None, Query(description="a deadline has passed, now")] = None,
        received_from: QueryDate | None = None,
        received_to: QueryDate | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: str | None = None,
    ) -> CasePage:
        flt = CaseFilter(
            unit_id=unit_id,
            kind=kind,
            topic=topic,
            status=status,
            overdue=overdue,
            received_from=received_from,
            received_to=received_to,
            limit=limit,
            cursor=cursor,
        )
        items, next_cursor = await svc.list_cases(caller, flt)
        return CasePage(items=items, next_cursor=next_cursor)

    @router.get("/cases/{case_id}", response_model=CaseOut)
    async def get_case(
        case_id: UUID, caller: Annotated[Principal, guard(CASES_READ)], svc: Svc
    ) -> CaseOut:
        return await svc.read_case(case_id, caller)

    @router.post("/cases/{case_id}/transitions", response_model=CaseOut)
    async def transition(
        case_id: UUID,
        body: TransitionRequest,
        caller: Annotated[Principal, guard(CASES_TRANSITION)],
        svc: Svc,
    ) -> CaseOut:
        return await svc.transition(case_id, body, caller)

    @router.post("/cases/{case_id}/extensions", response_model=CaseOut)
    async def extend(
        case_id: UUID,
        body: ExtensionRequest,
        caller: Annotated[Principal, guard(CASES_EXTEND)],
        svc: Svc,
    ) -> CaseOut:
        return await svc.extend(case_id, body, caller)

    @router.post("/cases/{case_id}/refer-up", response_model=CaseOut)
    async def refer_up(
        case_id: UUID,
        body: ReferralUpRequest,
        caller: Annotated[Principal, guard(CASES_REFER)],
        svc: Svc,
    ) -> CaseOut:
        """Refer the case up to the parent of the union holding it (SPEC §6): its staff then
        see the personal data. Not the `referred` status (sent out to a competent body)."""
        return await svc.refer_up(case_id, body, caller)

    @router.post("/cases/{case_id}/return-down", response_model=CaseOut)
    async def return_down(
        case_id: UUID,
        body: ReferralUpRequest,
        caller: Annotated[Principal, guard(CASES_REFER)],
        svc: Svc,
    ) -> CaseOut:
        """The union the case is referred up to hands it back to the one below."""
        return await svc.return_down(case_id, body, caller)

    return router

"""The cases service's HTTP routes (SPEC §9.2). Thin: parse, call one use case, answer.

Who may see or change what is decided by the use cases (`service.Cases`), which also write the
audit records: no route can reach personal data around them.
"""

from datetime import date
from typing import Annotated, Generic, TypeVar
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from lhpn_shared.auth import Authenticator, Principal
from lhpn_shared.contracts.cases import CaseKind, CaseStatus, CaseTopic

from .domain.visibility import LIST_NOTICE
from .models import (
    CaseListItem,
    CaseOut,
    ExtensionRequest,
    NewCase,
    ReferralUpRequest,
    TransitionRequest,
)
from .service import CaseFilter, Cases

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class CasePage(Page[CaseListItem]):
    personal_data_notice: str = Field(
        default=LIST_NOTICE, description="lists never carry personal data; this says so"
    )


def build_router(auth: Authenticator) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["cases"])
    Caller = Annotated[Principal, Depends(auth)]

    def cases(request: Request) -> Cases:
        svc: Cases = request.app.state.cases
        return svc

    Svc = Annotated[Cases, Depends(cases)]

    @router.post("/cases", response_model=CaseOut)
    async def open_case(body: NewCase, caller: Caller, svc: Svc, response: Response) -> CaseOut:
        case, created = await svc.open_case(body, caller)
        response.status_code = 201 if created else 200
        return case

    @router.get("/cases", response_model=CasePage)
    async def list_cases(
        caller: Caller,
        svc: Svc,
        unit_id: Annotated[str | None, Query(description="root of the subtree")] = None,
        kind: CaseKind | None = None,
        topic: CaseTopic | None = None,
        status: CaseStatus | None = None,
        overdue: Annotated[bool | None, Query(description="a deadline has passed, now")] = None,
        received_from: date | None = None,
        received_to: date | None = None,
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
    async def get_case(case_id: UUID, caller: Caller, svc: Svc) -> CaseOut:
        return await svc.read_case(case_id, caller)

    @router.post("/cases/{case_id}/transitions", response_model=CaseOut)
    async def transition(
        case_id: UUID, body: TransitionRequest, caller: Caller, svc: Svc
    ) -> CaseOut:
        return await svc.transition(case_id, body, caller)

    @router.post("/cases/{case_id}/extensions", response_model=CaseOut)
    async def extend(case_id: UUID, body: ExtensionRequest, caller: Caller, svc: Svc) -> CaseOut:
        return await svc.extend(case_id, body, caller)

    @router.post("/cases/{case_id}/refer-up", response_model=CaseOut)
    async def refer_up(case_id: UUID, body: ReferralUpRequest, caller: Caller, svc: Svc) -> CaseOut:
        """Refer the case up to the parent of the union holding it (SPEC §6): its staff then
        see the personal data. Not the `referred` status (sent out to a competent body)."""
        return await svc.refer_up(case_id, body, caller)

    @router.post("/cases/{case_id}/return-down", response_model=CaseOut)
    async def return_down(
        case_id: UUID, body: ReferralUpRequest, caller: Caller, svc: Svc
    ) -> CaseOut:
        """The union the case is referred up to hands it back to the one below."""
        return await svc.return_down(case_id, body, caller)

    return router

"""Aggregation's HTTP routes (SPEC §8, §9.2). Thin: parse, authorise, call one use case, answer.

Viewers may read aggregates; staff and systems only within their unit's subtree."""

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from lhpn_shared.access import EVERYONE, QUERY, READ, Guard, Permission
from lhpn_shared.auth import Principal
from lhpn_shared.http import INSTANT_TEXT, QueryDate

from .domain.case_stats import CaseStats
from .domain.compliance import DEFAULT_LIST_LIMIT, ComplianceResult
from .domain.indicators import IndicatorsResult
from .domain.rates import RatesOfPeriods, ReportingRates
from .queries import HeadingChoices
from .service import Aggregation, BadInput

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"

UnitParam = Annotated[
    str | None,
    Query(description="root of the subtree; default: the caller's unit, or the tree's root"),
]
AsOfParam = Annotated[
    datetime | None,
    INSTANT_TEXT,
    Query(description="instant with its time zone, e.g. 2021-07-01T00:00:00+07:00; default: now"),
]
PeriodParam = Annotated[str, Query(description="2021, 2021-H1, 2021-Q3 or 2021-03")]
ListLimitParam = Annotated[
    int,
    Query(
        ge=0,
        le=100_000,
        description="the most units each list of the answer holds (the counts are always "
        "whole; the export lists every unit)",
    ),
]


def _answer(result: BaseModel) -> Response:
    """The answer serialised once (FastAPI would validate a returned model again first: a
    country's answer holds thousands of units)."""
    return Response(result.model_dump_json(), media_type="application/json")


MAX_PERIODS = 24


def _periods(text: str) -> list[tuple[str, str]]:
    """`monthly:2021-03,quarterly:2021-Q1` → [(report type, period), …]."""
    pairs = [item.strip().partition(":") for item in text.split(",") if item.strip()]
    if not pairs or any(not t or not sep or not p for t, sep, p in pairs):
        raise BadInput(
            "periods: cần các cặp loại báo cáo:kỳ cách nhau bằng dấu phẩy, "
            "ví dụ monthly:2021-03,quarterly:2021-Q1."
        )
    if len(pairs) > MAX_PERIODS:
        raise BadInput(f"periods: tối đa {MAX_PERIODS} kỳ mỗi lần.")
    return [(t.strip(), p.strip()) for t, _, p in pairs]


def _disposition(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}


def _file(content: bytes, media_type: str, name: str) -> Response:
    return Response(content, media_type=media_type, headers=_disposition(name))


def _stream(pieces: AsyncIterator[bytes], media_type: str, name: str) -> StreamingResponse:
    return StreamingResponse(pieces, media_type=media_type, headers=_disposition(name))


def _safe(text: str) -> str:
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "-" for c in text)


# ---- who may call what (SPEC §9.3): aggregates are open to viewers, within the caller's subtree
AGGREGATES_READ = Permission("aggregates.read", READ, EVERYONE, (QUERY,))
EXPORTS_READ = Permission("exports.read", READ, EVERYONE, (QUERY,))


def build_router(guard: Guard) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["aggregates"])
    Caller = Annotated[Principal, guard(AGGREGATES_READ)]
    Exporter = Annotated[Principal, guard(EXPORTS_READ)]

    async def aggregation(request: Request) -> Aggregation:
        svc: Aggregation = request.app.state.aggregation
        return svc

    Svc = Annotated[Aggregation, Depends(aggregation)]

    async def readable_unit(svc: Aggregation, caller: Principal, unit_id: str | None) -> str:
        """The unit asked for (checked by the guard), or the caller's, or the root. (A unit it
        does not know is answered 404 by the use case, which reads its node anyway.)"""
        if unit_id is None:
            roots = await svc.roots() if caller.unit_id is None else []
            unit_id = caller.unit_id or (roots[0] if len(roots) == 1 else None)
            if unit_id is None:
                raise BadInput("Cần chọn đơn vị (unit_id).")
        return unit_id

    def as_of_or_now(svc: Aggregation, as_of: datetime | None) -> datetime:
        return as_of if as_of is not None else svc.clock.now()

    @router.get("/compliance", response_model=ComplianceResult)
    async def get_compliance(
        caller: Caller,
        svc: Svc,
        plan_id: str,
        unit_id: UnitParam = None,
        as_of: AsOfParam = None,
        list_limit: ListLimitParam = DEFAULT_LIST_LIMIT,
    ) -> Response:
        unit = await readable_unit(svc, caller, unit_id)
        return _answer(
            await svc.compliance(plan_id, unit, as_of_or_now(svc, as_of), list_limit=list_limit)
        )

    @router.get("/reporting-rates", response_model=ReportingRates)
    async def get_reporting_rates(
        caller: Caller,
        svc: Svc,
        report_type: str,
        period: str,
        unit_id: UnitParam = None,
        plan_id: Annotated[
            str | None, Query(description="default: the latest plan scheduling it")
        ] = None,
        list_limit: ListLimitParam = DEFAULT_LIST_LIMIT,
    ) -> Response:
        unit = await readable_unit(svc, caller, unit_id)
        return _answer(
            await svc.reporting_rates(report_type, period, unit, plan_id, list_limit=list_limit)
        )

    @router.get("/reporting-rates/batch", response_model=RatesOfPeriods)
    async def get_reporting_rates_of_periods(
        caller: Caller,
        svc: Svc,
        periods: Annotated[
            str,
            Query(
                description="report_type:period pairs separated by commas, e.g. "
                f"monthly:2021-03,monthly:2021-02,quarterly:2021-Q1 (at most {MAX_PERIODS}); "
                "each answer is the one `GET /reporting-rates` gives for that pair"
            ),
        ],
        unit_id: UnitParam = None,
        plan_id: Annotated[
            str | None, Query(description="default: per pair, the latest plan scheduling it")
        ] = None,
        list_limit: ListLimitParam = DEFAULT_LIST_LIMIT,
    ) -> Response:
        pairs = _periods(periods)
        unit = await readable_unit(svc, caller, unit_id)
        rates = await svc.reporting_rates_of(pairs, unit, plan_id, list_limit=list_limit)
        return _answer(RatesOfPeriods(rates=rates))

    @router.get("/indicators", response_model=IndicatorsResult)
    async def get_indicators(
        caller: Caller,
        svc: Svc,
        period: PeriodParam,
        unit_id: UnitParam = None,
        report_type: Annotated[
            str | None,
            Query(
                description="sum this type's reports of the periods within `period`; default: "
                "the monthly reports of the months within it"
            ),
        ] = None,
    ) -> Response:
        unit = await readable_unit(svc, caller, unit_id)
        return _answer(await svc.indicators(unit, period, report_type))

    @router.get("/case-stats", response_model=CaseStats)
    async def get_case_stats(
        caller: Caller, svc: Svc, period: PeriodParam, unit_id: UnitParam = None
    ) -> Response:
        unit = await readable_unit(svc, caller, unit_id)
        return _answer(await svc.case_stats(unit, period))

    @router.get("/exports/compliance.xlsx", response_class=Response, tags=["exports"])
    async def export_compliance(
        caller: Exporter,
        svc: Svc,
        plan_id: str,
        unit_id: UnitParam = None,
        as_of: AsOfParam = None,
    ) -> Response:
        unit = await readable_unit(svc, caller, unit_id)
        pieces = await svc.compliance_xlsx(plan_id, unit, as_of_or_now(svc, as_of))
        return _stream(pieces, XLSX, f"tuan-thu-{_safe(plan_id)}-{_safe(unit)}.xlsx")

    @router.get("/exports/indicators.xlsx", response_class=Response, tags=["exports"])
    async def export_indicators(
        caller: Exporter,
        svc: Svc,
        period: PeriodParam,
        unit_id: UnitParam = None,
        report_type: str | None = None,
    ) -> Response:
        unit = await readable_unit(svc, caller, unit_id)
        pieces = await svc.indicators_xlsx(unit, period, report_type)
        return _stream(pieces, XLSX, f"chi-so-{_safe(unit)}-{_safe(period)}.xlsx")

    @router.get("/exports/thematic-report.docx", response_class=Response, tags=["exports"])
    async def export_thematic_report(
        caller: Exporter,
        svc: Svc,
        plan_id: str,
        unit_id: UnitParam = None,
        as_of: AsOfParam = None,
        number: Annotated[
            str | None,
            Query(max_length=60, description="the report's number, e.g. 25/BC-BTV"),
        ] = None,
        dated_on: Annotated[
            QueryDate | None, Query(description="the report's date; default: the as-of date")
        ] = None,
        signer_name: Annotated[
            str | None, Query(max_length=120, description="who signs it")
        ] = None,
        signer_title: Annotated[
            str | None, Query(max_length=120, description="default: Chủ tịch")
        ] = None,
    ) -> Response:
        unit = await readable_unit(svc, caller, unit_id)
        choices = HeadingChoices(
            number=number, dated_on=dated_on, signer_name=signer_name, signer_title=signer_title
        )
        content = await svc.thematic_report(plan_id, unit, as_of_or_now(svc, as_of), choices)
        return _file(content, DOCX, f"bao-cao-chuyen-de-{_safe(plan_id)}-{_safe(unit)}.docx")

    return router

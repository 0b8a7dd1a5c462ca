"""Tổng quan: the user's subtree against the plan (drill down with `?unit_id=`): targets with
progress and cases on the page itself; the reporting and on-time rates of the latest periods and
their overdue obligations in a second request (`/tong-quan/ky-bao-cao`), which htmx fetches as
soon as the page is shown (a link opens it as a page of its own without JavaScript).

The split keeps the first answer to three calls after the reference data (compliance, case
stats, overdue cases); the rates of every period shown (six by default) are one aggregation
call (`/api/v1/reporting-rates/batch`), which reads the unit's plan part once for all of them.
All the calls of each request go out at once; a service that is down leaves its sections with a
message and the others filled."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..backend import Backend, Part, part, parts
from ..charts import count_bars, percent_columns
from ..labels import CASE_STATUS_LABELS
from ..lookups import plans, unit_index
from ..overview import (
    LatestPeriod,
    breadcrumbs,
    cases_overdue_first,
    latest_periods,
    latest_plan,
    plan_as_of,
)
from ..session import SignedIn
from ..web import Api, User, clock_of, render

router = APIRouter()


async def _scope(
    api: Backend, user: SignedIn, unit_id: str | None, now: datetime
) -> dict[str, Any]:
    """The plan, the units and the unit looked at: what both requests start from."""
    first = await parts(plans=plans(api, user), units=unit_index(api, user))
    units: dict[str, dict[str, Any]] = first["units"].data or {}
    plan = latest_plan(first["plans"].data) if first["plans"].ok else None
    root = unit_id or user.unit_id
    if root is None and units:  # an admin: the root of the tree
        roots = sorted(u for u, v in units.items() if v.get("parent_id") is None)
        root = roots[0] if roots else None
    return {
        "plan": plan,
        "plans_error": first["plans"].error,
        "units": units,
        "units_error": first["units"].error,
        "root": root,
        "root_unit": units.get(root or "", {}),
        "as_of": plan_as_of(plan, now) if plan else None,
    }


@router.get("/")
async def dashboard(request: Request, user: User, api: Api, unit_id: str | None = None) -> Response:
    context = await _scope(api, user, unit_id, clock_of(request).now())
    plan, root, units = context["plan"], context["root"], context["units"]
    context["crumbs"] = breadcrumbs(units, root, user.unit_id) if root and units else []
    if plan is None:
        return render(request, "dashboard.html", context, user=user, section="dashboard")

    token = user.token
    results = await parts(
        compliance=api.get(
            "aggregation",
            "/api/v1/compliance",
            token=token,
            params={
                "plan_id": plan["plan_id"],
                "unit_id": root,
                "as_of": context["as_of"].isoformat(),
            },
        ),
        case_stats=api.get(
            "aggregation",
            "/api/v1/case-stats",
            token=token,
            params={"unit_id": root, "period": str(plan["year"])},
        ),
        overdue_cases=api.get(
            "cases",
            "/api/v1/cases",
            token=token,
            params={"unit_id": root, "overdue": "true", "limit": 10},
        ),
    )
    stats: Part = results["case_stats"]
    case_bars = (
        count_bars([(CASE_STATUS_LABELS.get(k, k), v) for k, v in stats.data["by_status"].items()])
        if stats.ok and stats.data
        else []
    )
    overdue_cases: Part = results["overdue_cases"]
    if overdue_cases.ok and overdue_cases.data:
        overdue_cases.data["items"] = cases_overdue_first(overdue_cases.data["items"])
    context.update(
        compliance=results["compliance"],
        case_stats=stats,
        case_bars=case_bars,
        overdue_cases=overdue_cases,
    )
    return render(request, "dashboard.html", context, user=user, section="dashboard")


async def _rates_of(
    api: Backend,
    token: str,
    periods: list[LatestPeriod],
    unit_id: str | None,
    plan_id: str | None,
) -> list[tuple[LatestPeriod, Part]]:
    """The rates of the periods shown, in one aggregation call (`/reporting-rates/batch`):
    each period gets its answer, or the call's message when it failed."""
    if not periods:
        return []
    found = await part(
        api.get(
            "aggregation",
            "/api/v1/reporting-rates/batch",
            token=token,
            params={
                "periods": ",".join(f"{p.report_type}:{p.period}" for p in periods),
                "unit_id": unit_id,
                "plan_id": plan_id,
            },
        )
    )
    if not found.ok:
        return [(p, found) for p in periods]
    answers = found.data.get("rates", []) if isinstance(found.data, dict) else []
    if len(answers) != len(periods):
        wrong = Part(error="Dịch vụ tổng hợp số liệu trả lời không đúng số kỳ đã hỏi.")
        return [(p, wrong) for p in periods]
    return [(p, Part(data=a)) for p, a in zip(periods, answers, strict=True)]


@router.get("/tong-quan/ky-bao-cao")
async def latest_periods_part(
    request: Request, user: User, api: Api, unit_id: str | None = None
) -> Response:
    """The rates and overdue obligations of the latest periods: the dashboard's second part
    (htmx asks with `HX-Request`), or a page of its own."""
    now = clock_of(request).now()
    context = await _scope(api, user, unit_id, now)
    plan, root = context["plan"], context["root"]
    periods = latest_periods(plan, now, context["root_unit"].get("level")) if plan else []
    rates = await _rates_of(api, user.token, periods, root, plan["plan_id"] if plan else None)
    # overdue obligations of those periods: the units expected that have not reported once the
    # due instant has passed, i.e. the rates' `missing` (one call per period, not two)
    overdue = [(p, r) for p, r in rates if p.due_at <= now]
    # the chart follows the schedule with the most periods shown (the monthly one by default)
    charted = max(
        {p.report_type for p in periods}, key=[p.report_type for p in periods].count, default=None
    )
    rate_chart = percent_columns(
        [
            (p.period, [r.data.get("reporting_rate"), r.data.get("on_time_rate")])
            for p, r in sorted(rates, key=lambda pr: pr[0].due_at)
            if r.ok and r.data and p.report_type == charted
        ]
    )
    context.update(rates=rates, rate_chart=rate_chart, overdue=overdue, periods=periods)
    if request.headers.get("HX-Request"):
        return render(request, "dashboard_periods.html", context, user=user)
    return render(request, "dashboard_periods_page.html", context, user=user, section="dashboard")

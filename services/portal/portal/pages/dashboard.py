"""Tổng quan: the user's subtree against the plan (drill down with `?unit_id=`): targets with
progress and cases on the page itself; the reporting and on-time rates of the latest periods and
their overdue obligations in a second request (`/tong-quan/ky-bao-cao`), which htmx fetches as
soon as the page is shown (a link opens it as a page of its own without JavaScript).

The split keeps the first answer to three calls after the reference data (compliance, case
stats, overdue cases): the rates are one aggregation call per period shown (six by default),
which aggregation answers one after another. All the calls of each request go out at once; a
service that is down leaves its sections with a message and the others filled."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..backend import Backend, Part, parts
from ..charts import count_bars, percent_columns
from ..labels import CASE_STATUS_LABELS
from ..lookups import plans, unit_index
from ..overview import (
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
    results = await parts(
        **{
            f"rates{i}": api.get(
                "aggregation",
                "/api/v1/reporting-rates",
                token=user.token,
                params={
                    "report_type": p.report_type,
                    "period": p.period,
                    "unit_id": root,
                    "plan_id": plan["plan_id"] if plan else None,
                },
            )
            for i, p in enumerate(periods)
        }
    )
    rates = [(p, results[f"rates{i}"]) for i, p in enumerate(periods)]
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

"""Tổng quan: the user's subtree against the plan (drill down with `?unit_id=`): targets with
progress, reporting and on-time rates of the latest periods, overdue obligations, cases.

All the calls after the plan go out at once; a service that is down leaves its sections with a
message and the others filled."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..backend import Part, parts
from ..charts import count_bars, percent_columns
from ..labels import CASE_STATUS_LABELS
from ..lookups import unit_index
from ..overview import (
    breadcrumbs,
    cases_overdue_first,
    latest_periods,
    latest_plan,
    plan_as_of,
)
from ..web import Api, User, clock_of, render

router = APIRouter()


@router.get("/")
async def dashboard(request: Request, user: User, api: Api, unit_id: str | None = None) -> Response:
    now = clock_of(request).now()
    first = await parts(
        plans=api.get("intake", "/api/v1/plans", token=user.token),
        units=unit_index(api, user),
    )
    units: dict[str, dict[str, Any]] = first["units"].data or {}
    plan = latest_plan(first["plans"].data["items"]) if first["plans"].ok else None
    root = unit_id or user.unit_id
    if root is None and units:  # an admin: the root of the tree
        roots = sorted(u for u, v in units.items() if v.get("parent_id") is None)
        root = roots[0] if roots else None
    root_unit = units.get(root or "", {})
    context: dict[str, Any] = {
        "plan": plan,
        "plans_error": first["plans"].error,
        "units": units,
        "units_error": first["units"].error,
        "root": root,
        "root_unit": root_unit,
        "crumbs": breadcrumbs(units, root, user.unit_id) if root and units else [],
    }
    if plan is None:
        return render(request, "dashboard.html", context, user=user, section="dashboard")

    as_of = plan_as_of(plan, now)
    periods = latest_periods(plan, now, root_unit.get("level"))
    token = user.token
    calls: dict[str, Any] = {
        "compliance": api.get(
            "aggregation",
            "/api/v1/compliance",
            token=token,
            params={"plan_id": plan["plan_id"], "unit_id": root, "as_of": as_of.isoformat()},
        ),
        "case_stats": api.get(
            "aggregation",
            "/api/v1/case-stats",
            token=token,
            params={"unit_id": root, "period": str(plan["year"])},
        ),
        "overdue_cases": api.get(
            "cases",
            "/api/v1/cases",
            token=token,
            params={"unit_id": root, "overdue": "true", "limit": 10},
        ),
    }
    for i, p in enumerate(periods):
        calls[f"rates{i}"] = api.get(
            "aggregation",
            "/api/v1/reporting-rates",
            token=token,
            params={
                "report_type": p.report_type,
                "period": p.period,
                "unit_id": root,
                "plan_id": plan["plan_id"],
            },
        )
    results = await parts(**calls)
    rates = [(p, results[f"rates{i}"]) for i, p in enumerate(periods)]
    # overdue obligations of those periods: the units expected that have not reported once the
    # due instant has passed, i.e. the rates' `missing` (one call per period, not two)
    overdue = [(p, r) for p, r in rates if p.due_at <= now]
    stats: Part = results["case_stats"]
    case_bars = (
        count_bars([(CASE_STATUS_LABELS.get(k, k), v) for k, v in stats.data["by_status"].items()])
        if stats.ok and stats.data
        else []
    )
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
    overdue_cases: Part = results["overdue_cases"]
    if overdue_cases.ok and overdue_cases.data:
        overdue_cases.data["items"] = cases_overdue_first(overdue_cases.data["items"])
    context.update(
        as_of=as_of,
        compliance=results["compliance"],
        rates=rates,
        rate_chart=rate_chart,
        overdue=overdue,
        case_stats=stats,
        case_bars=case_bars,
        overdue_cases=overdue_cases,
        periods=periods,
    )
    return render(request, "dashboard.html", context, user=user, section="dashboard")

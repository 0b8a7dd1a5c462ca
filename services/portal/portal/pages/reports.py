"""Báo cáo: the unit's obligations (overdue first), submitting or resubmitting a report with
indicators, narrative and attachments, and what the units below have sent."""

from __future__ import annotations

import base64
from datetime import datetime, time
from typing import Any
from urllib.parse import urlencode
from uuid import uuid4

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from lhpn_shared.clock import LOCAL_TZ

from ..backend import Backend, Invalid, parts
from ..formatting import parse_vi_date, vi_period
from ..forms import NOT_A_DATE, report_body
from ..lookups import plans, unit_index
from ..overview import overdue_first
from ..problems import FieldErrors
from ..session import SignedIn
from ..web import Api, Form, User, flash, render, see_other, settings_of

router = APIRouter()

OBLIGATION_PAGES = 5
MAX_UPLOAD_BYTES = 7 * 1024 * 1024
"""What the portal reads of one form's files: 7 MiB is about 9.3 MiB once base64-encoded for
intake, under its default 10 MiB request limit; intake also limits each file (5 MiB)."""


async def own_obligations(api: Backend, user: SignedIn) -> list[dict[str, Any]]:
    """The user's unit's own obligations. The API filters by subtree, so the pages of the
    subtree are read and the unit's own kept (a few pages even for a province)."""
    if user.unit_id is None:
        return []
    found: list[dict[str, Any]] = []
    cursor = None
    for _ in range(OBLIGATION_PAGES):
        page = await api.get(
            "reminders",
            "/api/v1/obligations",
            token=user.token,
            params={"unit_id": user.unit_id, "limit": 1000, "cursor": cursor},
        )
        found.extend(o for o in page["items"] if o["unit_id"] == user.unit_id)
        cursor = page.get("next_cursor")
        if not cursor:
            break
    return overdue_first(found)


@router.get("/bao-cao")
async def reports_page(request: Request, user: User, api: Api, cursor: str = "") -> Response:
    limit = settings_of(request).page_size
    found = await parts(
        units=unit_index(api, user),
        plans=plans(api, user),
        obligations=own_obligations(api, user),
        received=api.get(
            "intake",
            "/api/v1/reports",
            token=user.token,
            params={"unit_id": user.unit_id, "limit": limit, "cursor": cursor},
        ),
    )
    titles = {
        s["report_type"]: s["title"]
        for p in (found["plans"].data or [])
        for s in p["report_schedules"]
    }
    received = found["received"]
    next_url = (
        "/bao-cao?" + urlencode({"cursor": received.data["next_cursor"]})
        if received.ok and received.data.get("next_cursor")
        else None
    )
    return render(
        request,
        "reports/list.html",
        {
            "units": found["units"].data or {},
            "titles": titles,
            "obligations": found["obligations"],
            "received": received,
            "next_url": next_url,
            "first_url": "/bao-cao" if cursor else None,
        },
        user=user,
        section="reports",
    )


async def _existing(api: Backend, user: SignedIn, report_type: str, period: str) -> Any:
    page = await api.get(
        "intake",
        "/api/v1/reports",
        token=user.token,
        params={"unit_id": user.unit_id, "report_type": report_type, "period": period},
    )
    return next((r for r in page["items"] if r["unit_id"] == user.unit_id), None)


async def _form_context(
    api: Backend, user: SignedIn, report_type: str, period: str
) -> dict[str, Any]:
    found = await parts(plans=plans(api, user), existing=_existing(api, user, report_type, period))
    schedule = None
    for plan in sorted(found["plans"].data or [], key=lambda p: -int(p["year"])):
        schedule = next(
            (s for s in plan["report_schedules"] if s["report_type"] == report_type), None
        )
        if schedule is not None:
            break
    period_entry = next(
        (p for p in (schedule or {}).get("periods", []) if p["period"] == period), None
    )
    indicators = list(dict.fromkeys((schedule or {}).get("indicators", [])))
    groups: dict[str, list[str]] = {}
    for code in indicators:
        groups.setdefault(code.partition(".")[0], []).append(code)
    due = (period_entry or {}).get("due_at", {}).get(user.unit_level or "")
    return {
        "plans_error": found["plans"].error,
        "existing": found["existing"].data,
        "existing_error": found["existing"].error,
        "schedule": schedule,
        "period_known": period_entry is not None,
        "indicators": indicators,
        "groups": groups,
        "due_at": due,
        "report_type": report_type,
        "period": period,
    }


def _values(existing: dict[str, Any] | None) -> dict[str, Any]:
    if not existing:
        return {"report_id": str(uuid4())}  # chosen now: a form sent twice is one report
    values: dict[str, Any] = {f"indicators.{k}": v for k, v in existing["indicators"].items()}
    values["narrative"] = existing.get("narrative", "")
    return values


@router.get("/bao-cao/nop")
async def report_form(
    request: Request, user: User, api: Api, report_type: str, period: str
) -> Response:
    context = await _form_context(api, user, report_type, period)
    return render(
        request,
        "reports/form.html",
        {**context, "values": _values(context["existing"]), "errors": {}},
        user=user,
        section="reports",
    )


async def _attachments(form: Any, errors: FieldErrors) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    total = 0
    for item in form.getlist("attachments"):
        if not isinstance(item, UploadFile) or not item.filename:
            continue
        content = await item.read(MAX_UPLOAD_BYTES - total + 1)
        total += len(content)
        if total > MAX_UPLOAD_BYTES:
            errors["attachments"] = "Tổng dung lượng tệp đính kèm quá lớn (tối đa 7 MB)."
            return []
        out.append(
            {
                "file_name": item.filename,
                "media_type": item.content_type or "application/octet-stream",
                "content_base64": base64.b64encode(content).decode("ascii"),
            }
        )
    return out


def _input_of(field: str) -> str:
    """The form input a service's field path belongs to."""
    if field == "received_at":
        return "received_on"
    return "attachments" if field.startswith("attachments") else field


@router.post("/bao-cao/nop")
async def submit_report(request: Request, user: User, api: Api, form: Form) -> Response:
    report_type = str(form.get("report_type", ""))
    period = str(form.get("period", ""))
    context = await _form_context(api, user, report_type, period)
    errors: FieldErrors = {}
    attachments = await _attachments(form, errors)
    body, parse_errors = report_body(form, context["indicators"], attachments)
    errors.update(parse_errors)
    body["unit_id"] = user.unit_id or ""
    if paper_on := str(form.get("received_on", "")).strip():
        day = parse_vi_date(paper_on)
        if day is None:
            errors["received_on"] = NOT_A_DATE
        else:  # the start of that day: on time whenever that day is on time
            body["received_at"] = datetime.combine(day, time(0, 0), tzinfo=LOCAL_TZ).isoformat()
    if not errors:
        try:
            saved = await api.send("intake", "POST", "/api/v1/reports", token=user.token, json=body)
        except Invalid as exc:
            errors = {_input_of(k): v for k, v in exc.errors.items()}
        else:
            when = "đúng hạn" if saved["on_time"] else "sau hạn"
            again = f" (lần nộp thứ {saved['revision']})" if saved["revision"] > 1 else ""
            flash(request, f"Đã nộp báo cáo {vi_period(period)}{again}, tính là nộp {when}.")
            return see_other("/bao-cao")
    values = {k: v for k, v in form.items() if not isinstance(v, UploadFile)}
    return render(
        request,
        "reports/form.html",
        {**context, "values": values, "errors": errors},
        user=user,
        section="reports",
        status_code=422,
    )

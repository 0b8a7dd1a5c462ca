"""Hoạt động: the list with filters and paging, a form per kind (SPEC §4), correct and void."""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import urlencode
from uuid import UUID, uuid4

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from lhpn_shared.clock import LOCAL_TZ

from ..backend import Invalid, parts
from ..formatting import parse_vi_date, vi_date
from ..forms import activity_body, activity_values
from ..labels import ACTIVITY_KIND_LABELS, ACTIVITY_KINDS
from ..lookups import plans, unit_index
from ..overview import latest_plan
from ..session import SignedIn
from ..web import Api, Form, User, clock_of, flash, render, see_other, settings_of

router = APIRouter()


def _kind_or_404(kind: str) -> str:
    if kind not in ACTIVITY_KINDS:
        raise HTTPException(404)
    return kind


def _today(request: Request) -> date:
    return clock_of(request).now().astimezone(LOCAL_TZ).date()


@router.get("/hoat-dong")
async def list_activities(
    request: Request,
    user: User,
    api: Api,
    unit_id: str = "",
    kind: str = "",
    from_on: str = "",
    to_on: str = "",
    include_voided: str = "",
    cursor: str = "",
) -> Response:
    start, end = parse_vi_date(from_on), parse_vi_date(to_on)
    filters = {
        "unit_id": unit_id,
        "kind": kind if kind in ACTIVITY_KINDS else "",
        "from_on": start.isoformat() if start else "",
        "to_on": end.isoformat() if end else "",
        "include_voided": "true" if include_voided else "",
    }
    params = {**filters, "limit": settings_of(request).page_size, "cursor": cursor}
    found = await parts(
        units=unit_index(api, user),
        page=api.get("intake", "/api/v1/activities", token=user.token, params=params),
    )
    page = found["page"]
    shown = {k: v for k, v in filters.items() if v}
    next_url = (
        "/hoat-dong?" + urlencode({**shown, "cursor": page.data["next_cursor"]})
        if page.ok and page.data.get("next_cursor")
        else None
    )
    first_url = ("/hoat-dong?" + urlencode(shown)) if cursor else None
    return render(
        request,
        "activities/list.html",
        {
            "units": found["units"].data or {},
            "page": page,
            "filters": filters,
            "next_url": next_url,
            "first_url": first_url,
        },
        user=user,
        section="activities",
    )


@router.get("/hoat-dong/moi")
async def choose_kind(request: Request, user: User) -> Response:
    return render(request, "activities/kinds.html", {}, user=user, section="activities")


async def _form_context(api: Api, user: SignedIn) -> dict[str, Any]:
    found = await parts(
        units=unit_index(api, user),
        plans=plans(api, user),
    )
    plan = latest_plan(found["plans"].data) if found["plans"].ok else None
    return {
        "units": found["units"].data or {},
        "units_error": found["units"].error,
        "plan": plan,
    }


def _render_form(
    request: Request,
    user: SignedIn,
    kind: str,
    context: dict[str, Any],
    *,
    values: dict[str, Any],
    errors: dict[str, str] | None = None,
    action: str,
    editing: bool = False,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "activities/form.html",
        {
            **context,
            "kind": kind,
            "kind_label": ACTIVITY_KIND_LABELS[kind],
            "values": values,
            "errors": errors or {},
            "action": action,
            "editing": editing,
            "today": _today(request).isoformat(),
        },
        user=user,
        section="activities",
        status_code=status_code,
    )


@router.get("/hoat-dong/moi/{kind}")
async def new_activity(request: Request, kind: str, user: User, api: Api) -> Response:
    kind = _kind_or_404(kind)
    context = await _form_context(api, user)
    values = {
        "activity_id": str(uuid4()),  # chosen now: a form sent twice records one activity
        "unit_id": user.unit_id or "",
        "plan_id": (context["plan"] or {}).get("plan_id", ""),
    }
    return _render_form(
        request, user, kind, context, values=values, action=f"/hoat-dong/moi/{kind}"
    )


@router.post("/hoat-dong/moi/{kind}")
async def record_activity(
    request: Request, kind: str, user: User, api: Api, form: Form
) -> Response:
    kind = _kind_or_404(kind)
    body, errors = activity_body(form, kind)
    activity_id = str(form.get("activity_id") or uuid4())
    values = {**dict(form), "activity_id": activity_id}
    if not errors:
        try:
            saved = await api.send(
                "intake",
                "POST",
                "/api/v1/activities",
                token=user.token,
                json={**body, "activity_id": activity_id},
            )
        except Invalid as exc:
            errors = exc.errors
        else:
            flash(request, f"Đã ghi nhận hoạt động “{saved['title']}”.")
            return see_other(f"/hoat-dong/{saved['activity_id']}")
    context = await _form_context(api, user)
    return _render_form(
        request,
        user,
        kind,
        context,
        values=values,
        errors=errors,
        action=f"/hoat-dong/moi/{kind}",
        status_code=422,
    )


@router.get("/hoat-dong/{activity_id}")
async def show_activity(request: Request, activity_id: UUID, user: User, api: Api) -> Response:
    found = await parts(
        activity=api.get("intake", f"/api/v1/activities/{activity_id}", token=user.token),
        units=unit_index(api, user),
    )
    if not found["activity"].ok:
        return render(
            request,
            "error.html",
            {"title": "Không xem được hoạt động", "message": found["activity"].error},
            user=user,
            status_code=404,
        )
    return render(
        request,
        "activities/show.html",
        {"a": found["activity"].data, "units": found["units"].data or {}},
        user=user,
        section="activities",
    )


@router.get("/hoat-dong/{activity_id}/sua")
async def edit_activity(request: Request, activity_id: UUID, user: User, api: Api) -> Response:
    activity = await api.get("intake", f"/api/v1/activities/{activity_id}", token=user.token)
    context = await _form_context(api, user)
    return _render_form(
        request,
        user,
        activity["kind"],
        context,
        values=activity_values(activity),
        action=f"/hoat-dong/{activity_id}/sua",
        editing=True,
    )


@router.post("/hoat-dong/{activity_id}/sua")
async def correct_activity(
    request: Request, activity_id: UUID, user: User, api: Api, form: Form
) -> Response:
    current = await api.get("intake", f"/api/v1/activities/{activity_id}", token=user.token)
    body, errors = activity_body(form, current["kind"])
    if not errors:
        try:
            saved = await api.send(
                "intake", "PUT", f"/api/v1/activities/{activity_id}", token=user.token, json=body
            )
        except Invalid as exc:
            errors = exc.errors
        else:
            flash(request, f"Đã sửa hoạt động (lần sửa thứ {saved['revision'] - 1}).")
            return see_other(f"/hoat-dong/{activity_id}")
    context = await _form_context(api, user)
    return _render_form(
        request,
        user,
        current["kind"],
        context,
        values=dict(form),
        errors=errors,
        action=f"/hoat-dong/{activity_id}/sua",
        editing=True,
        status_code=422,
    )


@router.post("/hoat-dong/{activity_id}/huy")
async def void_activity(
    request: Request, activity_id: UUID, user: User, api: Api, form: Form
) -> Response:
    reason = str(form.get("reason", "")).strip()
    voided = await api.request(
        "intake",
        "DELETE",
        f"/api/v1/activities/{activity_id}",
        token=user.token,
        params={"reason": reason},
    )
    data = voided.json()
    flash(request, f"Đã hủy hoạt động ngày {vi_date(data.get('occurred_on'))}.")
    return see_other(f"/hoat-dong/{activity_id}")

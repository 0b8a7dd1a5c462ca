"""Vụ việc pháp lý: open a case; the list (overdue first); a case page with its timeline, the
allowed next steps as buttons and deadline extensions. Personal fields appear only when the
cases service returns them (SPEC §6): the portal never asks for more than the user may see."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode
from uuid import UUID, uuid4

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..backend import Conflict, Forbidden, Invalid, NotFound, part, parts
from ..formatting import parse_vi_date
from ..forms import case_body
from ..labels import CASE_KIND_LABELS, CASE_STATUS_LABELS, CASE_TOPIC_LABELS
from ..lookups import unit_index
from ..overview import cases_overdue_first
from ..problems import FieldErrors
from ..web import Api, Form, User, flash, render, see_other, settings_of

router = APIRouter()


def _choice(value: str, allowed: dict[str, str]) -> str:
    return value if value in allowed else ""


@router.get("/vu-viec")
async def list_cases(
    request: Request,
    user: User,
    api: Api,
    unit_id: str = "",
    kind: str = "",
    topic: str = "",
    status: str = "",
    cursor: str = "",
) -> Response:
    filters = {
        "unit_id": unit_id,
        "kind": _choice(kind, CASE_KIND_LABELS),
        "topic": _choice(topic, CASE_TOPIC_LABELS),
        "status": _choice(status, CASE_STATUS_LABELS),
    }
    base = {**filters, "unit_id": unit_id or user.unit_id}
    calls: dict[str, Any] = {
        "units": unit_index(api, user),
        "page": api.get(
            "cases",
            "/api/v1/cases",
            token=user.token,
            params={
                **base,
                "overdue": "false",
                "limit": settings_of(request).page_size,
                "cursor": cursor,
            },
        ),
    }
    if not cursor:  # the overdue ones, all of them, above the first page
        calls["overdue"] = api.get(
            "cases",
            "/api/v1/cases",
            token=user.token,
            params={**base, "overdue": "true", "limit": 200},
        )
    found = await parts(**calls)
    overdue = found.get("overdue")
    if overdue is not None and overdue.ok:
        overdue.data["items"] = cases_overdue_first(overdue.data["items"])
    page = found["page"]
    shown = {k: v for k, v in filters.items() if v}
    next_url = (
        "/vu-viec?" + urlencode({**shown, "cursor": page.data["next_cursor"]})
        if page.ok and page.data.get("next_cursor")
        else None
    )
    return render(
        request,
        "cases/list.html",
        {
            "units": found["units"].data or {},
            "filters": filters,
            "page": page,
            "overdue": overdue,
            "next_url": next_url,
            "first_url": ("/vu-viec?" + urlencode(shown)) if cursor else None,
        },
        user=user,
        section="cases",
    )


async def _new_form(
    request: Request,
    user: Any,
    api: Api,
    values: dict[str, Any],
    errors: FieldErrors,
    status_code: int = 200,
) -> Response:
    units = await parts(units=unit_index(api, user))
    return render(
        request,
        "cases/form.html",
        {
            "units": units["units"].data or {},
            "units_error": units["units"].error,
            "values": values,
            "errors": errors,
        },
        user=user,
        section="cases",
        status_code=status_code,
    )


@router.get("/vu-viec/moi")
async def new_case(request: Request, user: User, api: Api) -> Response:
    values = {"case_id": str(uuid4()), "unit_id": user.unit_id or "", "flags": []}
    return await _new_form(request, user, api, values, {})


@router.post("/vu-viec/moi")
async def open_case(request: Request, user: User, api: Api, form: Form) -> Response:
    body, errors = case_body(form)
    if not errors:
        try:
            saved = await api.send("cases", "POST", "/api/v1/cases", token=user.token, json=body)
        except Invalid as exc:
            errors = exc.errors
        except Forbidden as exc:
            errors = {"": exc.message}
        else:
            flash(request, "Đã mở hồ sơ vụ việc.")
            return see_other(f"/vu-viec/{saved['case_id']}")
    values: dict[str, Any] = {k: v for k, v in form.items()}
    values["flags"] = form.getlist("flags")
    return await _new_form(request, user, api, values, errors, status_code=422)


@router.get("/vu-viec/{case_id}")
async def show_case(request: Request, case_id: UUID, user: User, api: Api) -> Response:
    """A case another branch owns is refused by the cases service: the 403 page says so."""
    case, units = await asyncio.gather(
        api.get("cases", f"/api/v1/cases/{case_id}", token=user.token),
        part(unit_index(api, user)),
    )
    return render(
        request,
        "cases/show.html",
        {"c": case, "units": units.data or {}},
        user=user,
        section="cases",
    )


def _referral(form: Any) -> dict[str, Any] | None:
    body = str(form.get("referral.body", "")).strip()
    number = str(form.get("referral.reference_number", "")).strip()
    on = parse_vi_date(str(form.get("referral.referred_on", "")))
    if not (body or number or on):
        return None
    return {
        "body": body,
        "reference_number": number,
        "referred_on": on.isoformat() if on else str(form.get("referral.referred_on", "")),
    }


def _refusal(exc: Conflict | Invalid | Forbidden | NotFound) -> str:
    if isinstance(exc, Invalid):
        return " ".join(exc.errors.values()) or exc.message
    return exc.message


@router.post("/vu-viec/{case_id}/chuyen")
async def transition(request: Request, case_id: UUID, user: User, api: Api, form: Form) -> Response:
    to = str(form.get("to", ""))
    body: dict[str, Any] = {"to": to, "note": str(form.get("note", "")).strip() or None}
    if to == "referred":
        body["referral"] = _referral(form)
    try:
        await api.send(
            "cases", "POST", f"/api/v1/cases/{case_id}/transitions", token=user.token, json=body
        )
    except (Conflict, Invalid, Forbidden, NotFound) as exc:
        flash(request, _refusal(exc), "error")
    else:
        flash(request, f"Đã chuyển hồ sơ sang “{CASE_STATUS_LABELS.get(to, to)}”.")
    return see_other(f"/vu-viec/{case_id}")


@router.post("/vu-viec/{case_id}/gia-han")
async def extend(request: Request, case_id: UUID, user: User, api: Api, form: Form) -> Response:
    body = {"note": str(form.get("note", "")).strip() or None}
    try:
        await api.send(
            "cases", "POST", f"/api/v1/cases/{case_id}/extensions", token=user.token, json=body
        )
    except (Conflict, Invalid, Forbidden, NotFound) as exc:
        flash(request, _refusal(exc), "error")
    else:
        flash(request, "Đã gia hạn thời hạn giải quyết.")
    return see_other(f"/vu-viec/{case_id}")

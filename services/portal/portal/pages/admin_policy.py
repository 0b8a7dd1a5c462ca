"""Quản trị › Chính sách nhắc hạn (admins): reminders' policy per report type and for cases,
shown in days before/after the due instant and edited in those terms (`policy_form`); the
service's 422 next to the field, a 409 (someone changed it meanwhile) above the form with the
current policy shown and the typed steps kept."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..backend import Backend, Conflict, Invalid, part
from ..lookups import plans
from ..policy_form import AUDIENCES, Section, body_from_form, describe, report_types_of, sections_of
from ..problems import FieldErrors
from ..session import SignedIn
from ..web import Admin, Api, Form, flash, render, see_other

router = APIRouter()

BASE = "/quan-tri/chinh-sach-nhac-han"
POLICY = "/api/v1/reminder-policy"


async def _report_types(api: Backend, user: SignedIn) -> dict[str, str]:
    """Report type → its title, from the plans (none if intake does not answer: the policy's
    own types are still shown)."""
    found = await part(plans(api, user))
    titles: dict[str, str] = {}
    for plan in found.data or []:
        for schedule in plan.get("report_schedules", []):
            titles.setdefault(schedule["report_type"], schedule.get("title") or "")
    return titles


async def _page(
    request: Request,
    user: SignedIn,
    api: Api,
    *,
    sections: list[Section] | None = None,
    errors: FieldErrors | None = None,
    conflict: str | None = None,
    revision: int | None = None,
    status_code: int = 200,
) -> Response:
    """`revision`: the one the form sends back (after a 422, the one the admin read; else the
    one just read: after a 409 the admin has seen the current policy above the form)."""
    policy = await part(api.get("reminders", POLICY, token=user.token))
    titles = await _report_types(api, user)
    shown = sections_of(policy.data, titles) if policy.ok else []
    form = sections if sections is not None else shown
    errors = errors or {}
    # a report type's own steps are folded away unless used, or marked by a problem
    opened = {s.key for s in form if s.own or any(k.startswith(s.key + ".") for k in errors)}
    return render(
        request,
        "admin/policy.html",
        {
            "policy": policy,
            "shown": shown,
            "sections": form,
            "opened": opened,
            "errors": errors,
            "conflict": conflict,
            "revision": revision if revision is not None else (policy.data or {}).get("revision"),
            "audiences": AUDIENCES,
            "describe": describe,
            "tab": "policy",
        },
        user=user,
        section="admin",
        status_code=status_code,
    )


@router.get(BASE)
async def policy_page(request: Request, user: Admin, api: Api) -> Response:
    return await _page(request, user, api)


@router.post(BASE)
async def save_policy(request: Request, user: Admin, api: Api, form: Form) -> Response:
    values = {k: str(v) for k, v in form.items()}
    body, sections, errors = body_from_form(values, report_types_of(values))
    if not errors:
        try:
            saved: dict[str, Any] = await api.send(
                "reminders", "PUT", POLICY, token=user.token, json=body
            )
        except Invalid as exc:
            errors = exc.errors
        except Conflict as exc:
            return await _page(
                request, user, api, sections=sections, conflict=exc.message, status_code=409
            )
        else:
            flash(
                request,
                f"Đã lưu chính sách nhắc hạn (phiên bản {saved['revision']}). Các bước mới áp "
                "dụng từ lần quét tới cho các nghĩa vụ và vụ việc còn mở; thư đã gửi không "
                "gửi lại.",
            )
            return see_other(BASE)
    return await _page(
        request,
        user,
        api,
        sections=sections,
        errors=errors,
        revision=body["revision"],
        status_code=422,
    )

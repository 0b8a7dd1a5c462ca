"""What every page handler uses: the signed-in user, the backend, checked forms, rendering."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from lhpn_shared.clock import Clock

from . import formatting, labels
from .backend import Backend, Forbidden
from .session import CSRF_FIELD, SignedIn, check_csrf, csrf_token, current_user
from .settings import PortalSettings

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

NAV = [
    ("/", "Tổng quan", "dashboard"),
    ("/hoat-dong", "Hoạt động", "activities"),
    ("/bao-cao", "Báo cáo", "reports"),
    ("/vu-viec", "Vụ việc pháp lý", "cases"),
]
ADMIN_TABS = [
    ("/quan-tri", "Nhắc việc", "reminders"),
    ("/quan-tri/nguoi-dung", "Người dùng", "users"),
    ("/quan-tri/khoa-api", "Khóa API", "keys"),
    ("/quan-tri/chinh-sach-nhac-han", "Chính sách nhắc hạn", "policy"),
    ("/quan-tri/hang-doi-loi", "Hàng đợi lỗi", "dlq"),
]
"""the Quản trị section's own tabs"""
ADMIN_NAV = ("/quan-tri", "Quản trị", "admin")


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    env = templates.env
    env.filters.update(
        vi_date=formatting.vi_date,
        vi_datetime=formatting.vi_datetime,
        vi_deadline=formatting.vi_deadline,
        vi_number=formatting.vi_number,
        vi_percent=formatting.vi_percent,
        vi_period=formatting.vi_period,
        capitalise=formatting.capitalise,
    )
    env.globals["L"] = labels
    env.globals["CSRF_FIELD"] = CSRF_FIELD
    env.globals["ADMIN_TABS"] = ADMIN_TABS
    return templates


def clock_of(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


def settings_of(request: Request) -> PortalSettings:
    settings: PortalSettings = request.app.state.settings
    return settings


def backend_of(request: Request) -> Backend:
    backend: Backend = request.app.state.backend
    return backend


async def signed_in(request: Request) -> SignedIn:
    user = await current_user(request, backend_of(request), clock_of(request).now())
    request.state.user = user  # the error pages show who is signed in too
    return user


async def checked_form(request: Request) -> FormData:
    """The posted form, once its form token matches the session's (every form carries one)."""
    form = await request.form()
    check_csrf(request, form.get(CSRF_FIELD))
    return form


async def signed_in_admin(request: Request) -> SignedIn:
    """The signed-in user, who must be an admin (the Quản trị pages)."""
    user = await signed_in(request)
    if not user.is_admin:
        raise Forbidden("portal", "Chỉ quản trị viên được dùng trang Quản trị.")
    return user


User = Annotated[SignedIn, Depends(signed_in)]
Admin = Annotated[SignedIn, Depends(signed_in_admin)]
Api = Annotated[Backend, Depends(backend_of)]
Form = Annotated[FormData, Depends(checked_form)]


def flash(request: Request, message: str, kind: str = "ok") -> None:
    """A message for the next page this user sees (after a redirect)."""
    request.session.setdefault("flash", []).append([kind, message])


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    user: SignedIn | None = None,
    status_code: int = 200,
    section: str = "",
) -> HTMLResponse:
    templates: Jinja2Templates = request.app.state.templates
    nav = list(NAV) + ([ADMIN_NAV] if user is not None and user.is_admin else [])
    messages = request.session.pop("flash", []) if "session" in request.scope else []
    response: HTMLResponse = templates.TemplateResponse(
        request,
        template,
        {
            "user": user,
            "csrf_token": csrf_token(request),
            "nav": nav,
            "section": section,
            "messages": messages,
            **(context or {}),
        },
        status_code=status_code,
    )
    return response

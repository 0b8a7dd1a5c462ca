"""Quản trị (admins), the reminders tab: contacts for reminders and a manual sweep. Users, API
keys, the reminder policy and the dead-letter queues have their own tabs (`admin_users`,
`admin_keys`, `admin_policy`, `admin_dead_letters`)."""

from __future__ import annotations

from datetime import datetime, time

from fastapi import APIRouter, Request
from fastapi.responses import Response

from lhpn_shared.clock import LOCAL_TZ

from ..backend import Invalid, part
from ..formatting import parse_vi_date
from ..lookups import unit_index
from ..problems import FieldErrors
from ..session import SignedIn
from ..web import Admin, Api, Form, render

router = APIRouter()


async def _page(
    request: Request,
    user: SignedIn,
    api: Api,
    *,
    contacts_errors: FieldErrors | None = None,
    contacts_values: dict[str, str] | None = None,
    contacts_saved: dict[str, object] | None = None,
    sweep: dict[str, object] | None = None,
    sweep_error: str | None = None,
    status_code: int = 200,
) -> Response:
    units = await part(unit_index(api, user))
    return render(
        request,
        "admin.html",
        {
            "units": units.data or {},
            "units_error": units.error,
            "contacts_errors": contacts_errors or {},
            "contacts_values": contacts_values or {},
            "contacts_saved": contacts_saved,
            "sweep": sweep,
            "sweep_error": sweep_error,
            "tab": "reminders",
        },
        user=user,
        section="admin",
        status_code=status_code,
    )


@router.get("/quan-tri")
async def admin_page(request: Request, user: Admin, api: Api) -> Response:
    return await _page(request, user, api)


@router.post("/quan-tri/danh-ba")
async def save_contacts(request: Request, user: Admin, api: Api, form: Form) -> Response:
    values = {k: str(v) for k, v in form.items()}
    unit_id = values.get("unit_id", "").strip()
    emails = [e.strip() for e in values.get("emails", "").replace(",", "\n").splitlines()]
    body = {
        "emails": [e for e in emails if e],
        "webhook_url": values.get("webhook_url", "").strip() or None,
        "webhook_secret": values.get("webhook_secret", "").strip() or None,
    }
    try:
        saved = await api.send(
            "reminders", "PUT", f"/api/v1/contacts/{unit_id}", token=user.token, json=body
        )
    except Invalid as exc:
        return await _page(
            request, user, api, contacts_errors=exc.errors, contacts_values=values, status_code=422
        )
    return await _page(request, user, api, contacts_saved=saved)


@router.post("/quan-tri/quet")
async def run_sweep(request: Request, user: Admin, api: Api, form: Form) -> Response:
    body: dict[str, object] = {}
    raw = str(form.get("as_of_on", "")).strip()
    if raw:
        day = parse_vi_date(raw)
        if day is None:
            return await _page(
                request,
                user,
                api,
                sweep_error="Ngày quét phải theo dạng ngày/tháng/năm.",
                status_code=422,
            )
        body["as_of"] = datetime.combine(day, time(8, 0), tzinfo=LOCAL_TZ).isoformat()
    try:
        result = await api.send(
            "reminders", "POST", "/api/v1/sweeps", token=user.token, json=body, slow=True
        )
    except Invalid as exc:
        return await _page(
            request, user, api, sweep_error=" ".join(exc.errors.values()), status_code=422
        )
    return await _page(request, user, api, sweep=result)

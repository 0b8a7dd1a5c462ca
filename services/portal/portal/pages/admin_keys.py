"""Quản trị › Khóa API (admins): the keys other systems use on intake — list, create (the key is
shown on the answer page, this once: intake keeps only its hash), revoke."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from lhpn_shared.inbound import INBOUND_ROUTING_KEYS

from ..backend import Conflict, Invalid, part
from ..lookups import unit_index
from ..problems import FieldErrors
from ..session import SignedIn
from ..web import Admin, Api, Form, flash, render, see_other

router = APIRouter()

BASE = "/quan-tri/khoa-api"
KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
EVENT_KEYS = sorted(INBOUND_ROUTING_KEYS)
"""the event types another system may send on `lhpn.inbound` (routing keys)"""

EVENTS_MODES = ("none", "all", "chosen")


def key_body(values: dict[str, str], events: list[str]) -> dict[str, Any]:
    """The form as intake's `NewApiKey`: routes one per line (none typed: every route open to
    systems); events none, all (null) or the ones ticked."""
    routes = [r.strip() for r in values.get("allowed_routes", "").replace(",", "\n").splitlines()]
    mode = values.get("events_mode", "none")
    allowed_events: list[str] | None = (
        None if mode == "all" else (sorted(set(events)) if mode == "chosen" else [])
    )
    return {
        "name": values.get("name", "").strip(),
        "unit_id": values.get("unit_id", ""),
        "allowed_routes": [r for r in routes if r] or None,
        "allowed_events": allowed_events,
        "broker_user": values.get("broker_user", "").strip() or None,
    }


async def _keys_page(
    request: Request,
    user: SignedIn,
    api: Api,
    *,
    values: dict[str, str] | None = None,
    events: list[str] | None = None,
    errors: FieldErrors | None = None,
    status_code: int = 200,
) -> Response:
    keys = await part(api.get("intake", "/api/v1/api-keys", token=user.token))
    units = await part(unit_index(api, user))
    if keys.ok and keys.data is not None:
        keys.data = sorted(keys.data, key=lambda k: (k["revoked"], k["name"]))
    return render(
        request,
        "admin/keys.html",
        {
            "keys": keys,
            "units": units.data or {},
            "units_error": units.error,
            "values": values or {"events_mode": "none"},
            "events": events or [],
            "event_keys": EVENT_KEYS,
            "errors": errors or {},
            "tab": "keys",
        },
        user=user,
        section="admin",
        status_code=status_code,
    )


@router.get(BASE)
async def keys_page(request: Request, user: Admin, api: Api) -> Response:
    return await _keys_page(request, user, api)


@router.post(BASE)
async def create_key(request: Request, user: Admin, api: Api, form: Form) -> Response:
    values = {k: str(v) for k, v in form.items() if k != "allowed_events"}
    events = [str(e) for e in form.getlist("allowed_events")]
    errors: FieldErrors = {}
    if values.get("events_mode") == "chosen" and not events:
        errors["allowed_events"] = "Chưa đánh dấu loại sự kiện nào."
    if not errors:
        try:
            body = key_body(values, events)
            created = await api.send(
                "intake", "POST", "/api/v1/api-keys", token=user.token, json=body
            )
        except Invalid as exc:
            errors = exc.errors
        except Conflict as exc:  # the name, or the broker user, is taken
            field = "broker_user" if "RabbitMQ" in exc.message else "name"
            errors = {field: exc.message}
        else:
            units = await part(unit_index(api, user))
            return render(
                request,
                "admin/key_created.html",
                {"key": created, "units": units.data or {}, "tab": "keys"},
                user=user,
                section="admin",
                status_code=201,
            )
    return await _keys_page(
        request, user, api, values=values, events=events, errors=errors, status_code=422
    )


@router.post(BASE + "/{key_id}/thu-hoi")
async def revoke_key(request: Request, key_id: str, user: Admin, api: Api, form: Form) -> Response:
    if not KEY_ID.fullmatch(key_id):
        raise HTTPException(404)
    revoked = await api.send(
        "intake", "POST", f"/api/v1/api-keys/{quote(key_id, safe='')}/revoke", token=user.token
    )
    flash(
        request,
        f"Đã thu hồi khóa “{revoked['name']}”: hệ thống dùng khóa này không gọi được nữa.",
    )
    return see_other(BASE)

"""Quản trị › Người dùng (admins): the accounts on intake — list, create, disable/enable, reset a
password, change role and unit. Every change that ends the user's sessions is intake's to make
(`session_version`); the portal then signs them out on their next page (`session.current_user`).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from ..backend import Conflict, Invalid, part
from ..labels import ROLE_LABELS
from ..lookups import unit_index
from ..problems import FieldErrors
from ..session import SignedIn
from ..web import Admin, Api, Form, flash, render, see_other

router = APIRouter()

USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
"""intake's rule for a username (a path segment here too)"""

ROLES = [r for r in ROLE_LABELS if r != "system"]
"""the roles a person's account may have (systems use API keys)"""

BASE = "/quan-tri/nguoi-dung"


def _user_path(username: str) -> str:
    return f"/api/v1/users/{quote(username, safe='')}"


def _checked_username(username: str) -> str:
    if not USERNAME.fullmatch(username):
        raise HTTPException(404)
    return username


def _password_pair(values: dict[str, str], errors: FieldErrors) -> None:
    """The new password typed twice the same (the service checks its length and the rest)."""
    if values.get("password", "") != values.get("password2", ""):
        errors["password2"] = "Hai lần nhập mật khẩu không giống nhau."


@router.get(BASE)
async def users_page(
    request: Request,
    user: Admin,
    api: Api,
    unit_id: str = "",
    role: str = "",
    cursor: str = "",
) -> Response:
    filters = {"unit_id": unit_id, "role": role if role in ROLES else ""}
    found = await part(
        api.get(
            "intake",
            "/api/v1/users",
            token=user.token,
            params={**filters, "cursor": cursor, "limit": 50},
        )
    )
    units = await part(unit_index(api, user))
    next_cursor = found.data.get("next_cursor") if found.ok and found.data else None
    query = {k: v for k, v in filters.items() if v}
    return render(
        request,
        "admin/users.html",
        {
            "found": found,
            "units": units.data or {},
            "units_error": units.error,
            "filters": filters,
            "roles": ROLES,
            "next_url": f"{BASE}?{urlencode({**query, 'cursor': next_cursor})}"
            if next_cursor
            else None,
            "first_url": f"{BASE}?{urlencode(query)}" if cursor else None,
            "tab": "users",
        },
        user=user,
        section="admin",
    )


async def _new_user_page(
    request: Request,
    user: SignedIn,
    api: Api,
    *,
    values: dict[str, str] | None = None,
    errors: FieldErrors | None = None,
    status_code: int = 200,
) -> Response:
    units = await part(unit_index(api, user))
    return render(
        request,
        "admin/user_new.html",
        {
            "units": units.data or {},
            "units_error": units.error,
            "values": values or {},
            "errors": errors or {},
            "roles": ROLES,
            "tab": "users",
        },
        user=user,
        section="admin",
        status_code=status_code,
    )


@router.get(f"{BASE}/moi")
async def new_user_page(request: Request, user: Admin, api: Api) -> Response:
    return await _new_user_page(request, user, api)


@router.post(f"{BASE}/moi")
async def create_user(request: Request, user: Admin, api: Api, form: Form) -> Response:
    values = {k: str(v) for k, v in form.items() if k not in ("password", "password2")}
    typed = {k: str(form.get(k, "")) for k in ("password", "password2")}
    errors: FieldErrors = {}
    _password_pair(typed, errors)
    username = values.get("username", "").strip()
    body = {
        "username": username,
        "password": typed["password"],
        "role": values.get("role", ""),
        "unit_id": values.get("unit_id") or None,
    }
    if not errors:
        try:
            await api.send("intake", "POST", "/api/v1/users", token=user.token, json=body)
        except Invalid as exc:
            errors = exc.errors
        except Conflict as exc:  # the username is taken
            errors = {"username": exc.message}
    if errors:
        return await _new_user_page(
            request, user, api, values=values, errors=errors, status_code=422
        )
    flash(request, f"Đã tạo tài khoản “{username}”.")
    return see_other(f"{BASE}/{quote(username, safe='')}")


async def _user_page(
    request: Request,
    user: SignedIn,
    api: Api,
    username: str,
    *,
    errors: dict[str, FieldErrors] | None = None,
    values: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    account: dict[str, Any] = await api.get("intake", _user_path(username), token=user.token)
    units = await part(unit_index(api, user))
    return render(
        request,
        "admin/user.html",
        {
            "account": account,
            "units": units.data or {},
            "units_error": units.error,
            "errors": errors or {},
            "values": values or {},
            "roles": ROLES,
            "tab": "users",
        },
        user=user,
        section="admin",
        status_code=status_code,
    )


@router.get(BASE + "/{username}")
async def user_page(request: Request, username: str, user: Admin, api: Api) -> Response:
    return await _user_page(request, user, api, _checked_username(username))


async def _change(
    request: Request,
    user: SignedIn,
    api: Api,
    username: str,
    *,
    which: str,
    path: str,
    body: dict[str, Any],
    done: str,
    values: dict[str, str] | None = None,
) -> Response:
    """One change of an account; its problems are shown next to the fields of its own form."""
    try:
        await api.send("intake", "PUT", _user_path(username) + path, token=user.token, json=body)
    except Invalid as exc:
        return await _user_page(
            request,
            user,
            api,
            username,
            errors={which: exc.errors},
            values=values,
            status_code=422,
        )
    except Conflict as exc:  # the last enabled admin, or changed by someone else meanwhile
        return await _user_page(
            request,
            user,
            api,
            username,
            errors={which: {"": exc.message}},
            values=values,
            status_code=409,
        )
    flash(request, done)
    return see_other(f"{BASE}/{quote(username, safe='')}")


@router.post(BASE + "/{username}/trang-thai")
async def enable_or_disable(
    request: Request, username: str, user: Admin, api: Api, form: Form
) -> Response:
    username = _checked_username(username)
    enabled = str(form.get("enabled", "")) == "1"
    done = (
        f"Đã mở khóa tài khoản “{username}”."
        if enabled
        else f"Đã khóa tài khoản “{username}”: mọi phiên đăng nhập của tài khoản này đã kết thúc."
    )
    return await _change(
        request,
        user,
        api,
        username,
        which="enabled",
        path="/enabled",
        body={"enabled": enabled},
        done=done,
    )


@router.post(BASE + "/{username}/mat-khau")
async def reset_password(
    request: Request, username: str, user: Admin, api: Api, form: Form
) -> Response:
    username = _checked_username(username)
    typed = {k: str(form.get(k, "")) for k in ("password", "password2")}
    errors: FieldErrors = {}
    _password_pair(typed, errors)
    if errors:
        return await _user_page(
            request, user, api, username, errors={"password": errors}, status_code=422
        )
    return await _change(
        request,
        user,
        api,
        username,
        which="password",
        path="/password",
        body={"password": typed["password"]},
        done=f"Đã đặt lại mật khẩu của “{username}”; người dùng đăng nhập lại bằng mật khẩu mới.",
    )


@router.post(BASE + "/{username}/vai-tro")
async def change_role(
    request: Request, username: str, user: Admin, api: Api, form: Form
) -> Response:
    username = _checked_username(username)
    values = {k: str(form.get(k, "")) for k in ("role", "unit_id")}
    return await _change(
        request,
        user,
        api,
        username,
        which="role",
        path="/role",
        body={"role": values["role"], "unit_id": values["unit_id"] or None},
        done=f"Đã đổi vai trò, đơn vị của “{username}”; "
        "người dùng đăng nhập lại để dùng quyền mới.",
        values=values,
    )

"""Tài khoản: the signed-in user's own account; changing one's password (intake ends the other
sessions and answers with a new token, which this session keeps)."""

from __future__ import annotations

import dataclasses

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..backend import Invalid
from ..problems import FieldErrors
from ..session import SignedIn, remember
from ..web import Api, Form, User, clock_of, flash, render, see_other

router = APIRouter()


def _page(
    request: Request, user: SignedIn, errors: FieldErrors | None = None, status_code: int = 200
) -> Response:
    return render(
        request,
        "account.html",
        {"errors": errors or {}},
        user=user,
        section="account",
        status_code=status_code,
    )


@router.get("/tai-khoan")
async def account_page(request: Request, user: User) -> Response:
    return _page(request, user)


@router.post("/tai-khoan/mat-khau")
async def change_password(request: Request, user: User, api: Api, form: Form) -> Response:
    typed = {k: str(form.get(k, "")) for k in ("current_password", "new_password", "new_password2")}
    errors: FieldErrors = {}
    if not typed["current_password"]:
        errors["current_password"] = "Chưa nhập mật khẩu hiện tại."  # noqa: S105 - a message
    if typed["new_password"] != typed["new_password2"]:
        errors["new_password2"] = "Hai lần nhập mật khẩu mới không giống nhau."
    if not errors:
        try:
            answer = await api.send(
                "intake",
                "PUT",
                "/api/v1/me/password",
                token=user.token,
                json={k: typed[k] for k in ("current_password", "new_password")},
            )
        except Invalid as exc:
            errors = exc.errors
    if errors:
        return _page(request, user, errors, status_code=422)
    now = clock_of(request).now()
    remember(
        request,
        dataclasses.replace(
            user,
            token=str(answer["access_token"]),
            expires_at=int(now.timestamp()) + int(answer["expires_in"]),
        ),
    )
    flash(
        request,
        "Đã đổi mật khẩu. Các phiên đăng nhập khác của bạn (máy khác, trình duyệt khác) "
        "đã kết thúc.",
    )
    return see_other("/tai-khoan")

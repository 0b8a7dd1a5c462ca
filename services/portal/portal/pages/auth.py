"""Đăng nhập / đăng xuất: intake checks the password and issues the token the session keeps."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..backend import BackendError, ServiceDown, SessionRejected
from ..session import forget, remember, safe_next, signed_in_from_token_answer
from ..web import Api, Form, clock_of, render, see_other

router = APIRouter()


@router.get("/dang-nhap")
async def sign_in_page(request: Request, next: str = "/", het_han: str = "") -> Response:
    message = (
        "Phiên đăng nhập đã hết hạn hoặc không còn hiệu lực (tài khoản vừa được thay đổi), "
        "vui lòng đăng nhập lại."
        if het_han
        else None
    )
    return render(
        request, "login.html", {"next": safe_next(next), "notice": message, "username": ""}
    )


@router.post("/dang-nhap")
async def sign_in(request: Request, form: Form, api: Api) -> Response:
    username = str(form.get("username", "")).strip()
    password = str(form.get("password", ""))
    next_url = safe_next(str(form.get("next", "/")))
    error = None
    if not username or not password:
        error = "Vui lòng nhập tên đăng nhập và mật khẩu."
    else:
        try:
            answer = await api.sign_in(username, password)
        except SessionRejected:
            error = "Sai tên đăng nhập hoặc mật khẩu."
        except ServiceDown:
            error = "Dịch vụ đăng nhập tạm thời không trả lời, vui lòng thử lại sau ít phút."
        except BackendError as exc:
            error = exc.message
        else:
            unit = None
            if answer.get("unit_id"):
                try:
                    unit = await api.get(
                        "intake",
                        f"/api/v1/units/{answer['unit_id']}",
                        token=answer["access_token"],
                    )
                except BackendError:
                    unit = None  # the header then shows the unit's code
            user = signed_in_from_token_answer(username, answer, unit, clock_of(request).now())
            remember(request, user)
            return see_other(next_url)
    return render(
        request,
        "login.html",
        {"next": next_url, "error": error, "username": username},
        status_code=401 if error else 200,
    )


@router.post("/dang-xuat")
async def sign_out(request: Request, form: Form) -> Response:
    forget(request)
    request.session["flash"] = [["ok", "Bạn đã đăng xuất."]]
    return see_other("/dang-nhap")

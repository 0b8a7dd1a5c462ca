"""Quản trị › Người dùng, Khóa API, and one's own password: admins only, a form token on every
form, the service's refusals next to the field, the new key shown once."""

from __future__ import annotations

import json
import re

import httpx

from tests.support.http import running
from tests.unit.portal.fakes import FakeServices, csrf_of, sign_in

ACCOUNT = {
    "username": "xa-moi",
    "role": "commune_staff",
    "unit_id": "22015",
    "enabled": True,
    "created_at": "2026-12-01T08:00:00Z",
    "updated_at": "2026-12-01T08:00:00Z",
}


def admin_fakes() -> FakeServices:
    fakes = FakeServices()
    fakes.role, fakes.unit_id = "admin", None
    return fakes


def answer(method: str, path: str, body: object, status: int = 200) -> object:
    def handler(q: httpx.Request) -> httpx.Response | None:
        if q.method == method and q.url.path == path:
            return httpx.Response(status, json=body)
        return None

    return handler


def sent(fakes: FakeServices, method: str, path: str) -> object:
    """The JSON body of the last `method path` the portal sent."""
    asked = [q for q in fakes.requests if q.method == method and q.url.path == path]
    assert asked, f"nothing sent to {method} {path}"
    return json.loads(asked[-1].content)


def forms_without_token(html: str) -> list[str]:
    forms = re.findall(r"<form[^>]*method=\"post\".*?</form>", html, flags=re.S)
    return [f[:120] for f in forms if 'name="csrf_token"' not in f]


async def test_the_admin_pages_are_refused_to_staff() -> None:
    fakes = FakeServices()  # a district staff
    async with running(fakes.app()) as client:
        await sign_in(client)
        for path in ("/quan-tri", "/quan-tri/nguoi-dung", "/quan-tri/khoa-api"):
            page = await client.get(path)
            assert page.status_code == 403, path
            assert "Chỉ quản trị viên" in page.text
        assert not [q for q in fakes.requests if q.url.path.startswith("/api/v1/users")]


async def test_every_form_of_the_admin_pages_carries_the_form_token() -> None:
    fakes = admin_fakes()
    fakes.extra += [
        answer("GET", "/api/v1/users", {"items": [ACCOUNT], "next_cursor": None}),
        answer("GET", "/api/v1/users/xa-moi", ACCOUNT),
        answer("GET", "/api/v1/api-keys", []),
    ]
    async with running(fakes.app()) as client:
        await sign_in(client)
        for path in (
            "/quan-tri",
            "/quan-tri/nguoi-dung",
            "/quan-tri/nguoi-dung/moi",
            "/quan-tri/nguoi-dung/xa-moi",
            "/quan-tri/khoa-api",
            "/tai-khoan",
        ):
            page = await client.get(path)
            assert page.status_code == 200, (path, page.text[:300])
            assert '<form method="post"' in page.text, path
            assert forms_without_token(page.text) == [], path


async def test_a_form_without_its_token_changes_no_account() -> None:
    fakes = admin_fakes()
    async with running(fakes.app()) as client:
        await sign_in(client)
        r = await client.post("/quan-tri/nguoi-dung/xa-moi/trang-thai", data={"enabled": "0"})
        assert r.status_code == 403
        assert not [q for q in fakes.requests if q.method == "PUT"]


async def test_a_new_account_refused_by_intake_shows_why_next_to_the_field() -> None:
    fakes = admin_fakes()
    problem = [
        {
            "loc": ["body", "unit_id"],
            "msg": "Cán bộ phải gắn với một đơn vị.",
            "type": "value_error",
        }
    ]
    fakes.extra.append(answer("POST", "/api/v1/users", {"detail": problem}, 422))
    async with running(fakes.app()) as client:
        await sign_in(client)
        form = await client.get("/quan-tri/nguoi-dung/moi")
        base = {
            "csrf_token": csrf_of(form.text),
            "username": "xa-moi",
            "role": "commune_staff",
            "unit_id": "",
        }
        mismatch = await client.post(
            "/quan-tri/nguoi-dung/moi", data={**base, "password": "12345678", "password2": "x"}
        )
        assert mismatch.status_code == 422
        assert 'id="loi-password2">Hai lần nhập mật khẩu không giống nhau.' in mismatch.text
        assert not [q for q in fakes.requests if q.method == "POST" and "users" in q.url.path]
        refused = await client.post(
            "/quan-tri/nguoi-dung/moi",
            data={**base, "password": "12345678", "password2": "12345678"},
        )
        assert refused.status_code == 422
        assert 'id="loi-unit_id">Cán bộ phải gắn với một đơn vị.' in refused.text
        assert 'value="xa-moi"' in refused.text  # what was typed stays (not the password)
        assert "12345678" not in refused.text
        assert sent(fakes, "POST", "/api/v1/users") == {
            "username": "xa-moi",
            "password": "12345678",
            "role": "commune_staff",
            "unit_id": None,
        }


async def test_disabling_an_account_asks_intake_and_says_its_sessions_ended() -> None:
    fakes = admin_fakes()
    fakes.extra += [
        answer("PUT", "/api/v1/users/xa-moi/enabled", {**ACCOUNT, "enabled": False}),
        answer("GET", "/api/v1/users/xa-moi", {**ACCOUNT, "enabled": False}),
    ]
    async with running(fakes.app()) as client:
        await sign_in(client)
        page = await client.get("/quan-tri/nguoi-dung/xa-moi")
        r = await client.post(
            "/quan-tri/nguoi-dung/xa-moi/trang-thai",
            data={"csrf_token": csrf_of(page.text), "enabled": "0"},
        )
        assert r.status_code == 303
        assert sent(fakes, "PUT", "/api/v1/users/xa-moi/enabled") == {"enabled": False}
        shown = await client.get(r.headers["location"])
        assert "Đã khóa tài khoản “xa-moi”" in shown.text
        assert "Mở khóa tài khoản" in shown.text


async def test_the_last_admin_refusal_is_said_on_the_form_it_came_from() -> None:
    fakes = admin_fakes()
    admin = {**ACCOUNT, "username": "admin", "role": "admin", "unit_id": None}
    fakes.extra += [
        answer(
            "PUT",
            "/api/v1/users/admin/enabled",
            {"detail": "Không thể khóa hoặc đổi vai trò quản trị viên cuối cùng."},
            409,
        ),
        answer("GET", "/api/v1/users/admin", admin),
    ]
    async with running(fakes.app()) as client:
        await sign_in(client)
        page = await client.get("/quan-tri/nguoi-dung/admin")
        r = await client.post(
            "/quan-tri/nguoi-dung/admin/trang-thai",
            data={"csrf_token": csrf_of(page.text), "enabled": "0"},
        )
        assert r.status_code == 409
        assert "Không thể khóa hoặc đổi vai trò quản trị viên cuối cùng." in r.text


async def test_a_new_api_key_is_shown_once_and_never_listed() -> None:
    fakes = admin_fakes()
    key = "lhpn_k1_" + "s" * 43
    created = {
        "key_id": "k1",
        "name": "ho-so-tinh",
        "prefix": "lhpn_k1_ss",
        "unit_id": "555",
        "allowed_routes": ["activities.record"],
        "allowed_events": [],
        "broker_user": None,
        "revoked": False,
        "created_at": "2026-12-01T08:00:00Z",
        "created_by": "admin",
    }
    fakes.extra += [
        answer("POST", "/api/v1/api-keys", {**created, "key": key}, 201),
        answer("GET", "/api/v1/api-keys", [created]),
    ]
    async with running(fakes.app()) as client:
        await sign_in(client)
        page = await client.get("/quan-tri/khoa-api")
        r = await client.post(
            "/quan-tri/khoa-api",
            data={
                "csrf_token": csrf_of(page.text),
                "name": "ho-so-tinh",
                "unit_id": "555",
                "allowed_routes": "activities.record\n",
                "events_mode": "none",
            },
        )
        assert r.status_code == 201
        assert key in r.text and "một lần" in r.text
        assert sent(fakes, "POST", "/api/v1/api-keys") == {
            "name": "ho-so-tinh",
            "unit_id": "555",
            "allowed_routes": ["activities.record"],
            "allowed_events": [],
            "broker_user": None,
        }
        listed = await client.get("/quan-tri/khoa-api")
        assert "ho-so-tinh" in listed.text and key not in listed.text


async def test_changing_ones_password_keeps_this_session_on_the_new_token() -> None:
    fakes = FakeServices()
    fakes.extra.append(
        answer(
            "PUT",
            "/api/v1/me/password",
            {
                "access_token": "tok-huyen",  # the fake's /me knows its owner by this token
                "token_type": "bearer",
                "expires_in": 3600,
                "role": "district_staff",
                "unit_id": "555",
            },
        )
    )
    async with running(fakes.app()) as client:
        await sign_in(client)
        page = await client.get("/tai-khoan")
        token = csrf_of(page.text[page.text.index('action="/tai-khoan/mat-khau"') - 200 :])
        bad = await client.post(
            "/tai-khoan/mat-khau",
            data={
                "csrf_token": token,
                "current_password": "matkhau123",
                "new_password": "moi-12345",
                "new_password2": "moi-54321",
            },
        )
        assert bad.status_code == 422
        assert "Hai lần nhập mật khẩu mới không giống nhau." in bad.text
        r = await client.post(
            "/tai-khoan/mat-khau",
            data={
                "csrf_token": token,
                "current_password": "matkhau123",
                "new_password": "moi-12345",
                "new_password2": "moi-12345",
            },
        )
        assert r.status_code == 303
        assert sent(fakes, "PUT", "/api/v1/me/password") == {
            "current_password": "matkhau123",
            "new_password": "moi-12345",
        }
        shown = await client.get("/tai-khoan")
        assert shown.status_code == 200 and "Đã đổi mật khẩu" in shown.text

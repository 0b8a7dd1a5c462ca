"""Every form is refused without this session's form token (cross-site request forgery)."""

from __future__ import annotations

from tests.support.http import running
from tests.unit.portal.fakes import FakeServices, csrf_of, sign_in


async def test_the_sign_in_form_is_refused_without_its_form_token() -> None:
    fakes = FakeServices()
    async with running(fakes.app()) as client:
        await client.get("/dang-nhap")
        r = await client.post(
            "/dang-nhap", data={"username": "huyen", "password": "matkhau123", "next": "/"}
        )
        assert r.status_code == 403
        assert "Biểu mẫu đã hết hiệu lực" in r.text
        assert not any(q.url.path == "/api/v1/auth/token" for q in fakes.requests)


async def test_a_form_with_another_sessions_token_is_refused_and_nothing_is_sent() -> None:
    fakes = FakeServices()
    async with running(fakes.app()) as client, running(fakes.app()) as other:
        assert (await sign_in(client)).status_code == 303
        stranger = csrf_of((await other.get("/dang-nhap")).text)
        before = len(fakes.requests)
        r = await client.post(
            "/hoat-dong/moi/supervision",
            data={"csrf_token": stranger, "unit_id": "555", "title": "x"},
        )
        assert r.status_code == 403
        assert not any(q.method == "POST" for q in fakes.requests[before:])


async def test_a_form_with_the_sessions_token_reaches_the_service() -> None:
    fakes = FakeServices()
    async with running(fakes.app()) as client:
        await sign_in(client)
        form_page = await client.get("/hoat-dong/moi/supervision")
        assert form_page.status_code == 200
        r = await client.post(
            "/hoat-dong/moi/supervision",
            data={
                "csrf_token": csrf_of(form_page.text),
                "unit_id": "555",
                "title": "Giám sát chính sách",
                "occurred_on": "05/03/2021",
                "metrics.recommendations": "2",
            },
        )
        sent = [q for q in fakes.requests if q.method == "POST" and "activities" in q.url.path]
        assert len(sent) == 1
        assert b'"occurred_on":"2021-03-05"' in sent[0].content.replace(b" ", b"")
        assert sent[0].headers["authorization"] == "Bearer tok-huyen"
        assert r.status_code == 303
        assert r.headers["location"].startswith("/hoat-dong/")


async def test_the_token_is_also_accepted_from_the_htmx_header() -> None:
    fakes = FakeServices()
    async with running(fakes.app()) as client:
        await sign_in(client)
        token = csrf_of((await client.get("/hoat-dong/moi/supervision")).text)
        r = await client.post("/dang-xuat", headers={"X-CSRF-Token": token, "HX-Request": "true"})
        assert r.status_code == 303
        assert (await client.get("/")).status_code == 303  # signed out

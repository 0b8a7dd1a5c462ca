"""Sign-in, the session cookie, expiry (back to sign-in, then to the page asked for), and the
headers every page carries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from lhpn_shared.clock import FixedClock
from tests.support.http import running
from tests.unit.portal.fakes import FakeServices, csrf_of, sign_in


async def test_every_page_sends_the_user_to_sign_in_first_and_then_to_the_page_asked_for() -> None:
    fakes = FakeServices()
    async with running(fakes.app()) as client:
        r = await client.get("/hoat-dong?kind=supervision")
        assert r.status_code == 303
        assert r.headers["location"] == "/dang-nhap?next=%2Fhoat-dong%3Fkind%3Dsupervision"
        login = await client.get(r.headers["location"])
        assert 'name="next" value="/hoat-dong?kind=supervision"' in login.text
        r = await sign_in(client, "/hoat-dong?kind=supervision")
        assert r.status_code == 303
        assert r.headers["location"] == "/hoat-dong?kind=supervision"


async def test_every_page_shows_the_users_unit_and_role() -> None:
    fakes = FakeServices()
    async with running(fakes.app()) as client:
        await sign_in(client)
        for path in ("/", "/hoat-dong", "/bao-cao", "/vu-viec"):
            page = await client.get(path)
            assert page.status_code == 200, path
            assert "Thành phố Tuy Hoà" in page.text
            assert "Cán bộ Hội LHPN huyện" in page.text


async def test_a_wrong_password_is_said_in_vietnamese_and_keeps_no_session() -> None:
    fakes = FakeServices()
    async with running(fakes.app()) as client:
        page = await client.get("/dang-nhap")
        r = await client.post(
            "/dang-nhap",
            data={"csrf_token": csrf_of(page.text), "username": "huyen", "password": "sai"},
        )
        assert r.status_code == 401
        assert "Sai tên đăng nhập hoặc mật khẩu." in r.text
        assert (await client.get("/")).status_code == 303


async def test_an_expired_session_returns_to_sign_in_and_then_to_the_page_asked_for() -> None:
    fakes = FakeServices()
    fakes.token_expires_in = 600
    clock = FixedClock(datetime(2026, 12, 1, 8, 0, tzinfo=UTC))
    async with running(fakes.app(clock=clock)) as client:
        await sign_in(client)
        assert (await client.get("/bao-cao")).status_code == 200
        clock.advance(timedelta(seconds=601))
        r = await client.get("/bao-cao")
        assert r.status_code == 303
        assert r.headers["location"] == "/dang-nhap?next=%2Fbao-cao&het_han=1"
        login = await client.get(r.headers["location"])
        assert "Phiên đăng nhập đã hết hạn" in login.text
        r = await sign_in(client, "/bao-cao")
        assert r.headers["location"] == "/bao-cao"
        assert (await client.get("/bao-cao")).status_code == 200


async def test_a_token_a_service_refuses_ends_the_session() -> None:
    fakes = FakeServices()
    async with running(fakes.app()) as client:
        await sign_in(client)
        fakes.extra.append(
            lambda q: (
                httpx.Response(401, json={"detail": "hết hạn"})
                if q.url.path == "/api/v1/activities"
                else None
            )
        )
        r = await client.get("/hoat-dong")
        assert r.status_code == 303
        assert r.headers["location"] == "/dang-nhap?next=%2Fhoat-dong&het_han=1"
        assert (await client.get("/")).status_code == 303  # the session is gone


async def test_a_redirect_after_sign_in_never_leaves_the_site() -> None:
    fakes = FakeServices()
    async with running(fakes.app()) as client:
        for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
            r = await sign_in(client, target)
            assert r.headers["location"] == "/", target


async def test_the_session_cookie_is_httponly_and_lax_and_secure_outside_development() -> None:
    fakes = FakeServices()
    async with running(fakes.app()) as client:
        r = await sign_in(client)
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie
    production = {
        "env": "production",
        "session_secret": "s" * 40,
        "jwt_secret": "j" * 40,
        "admin_password": "a-strong-password",
        "rabbit_url": "amqp://lhpn:pw@127.0.0.1:5672/",
    }
    async with running(fakes.app(**production)) as client:
        r = await client.get("/dang-nhap")
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "secure" in cookie
        assert r.headers["strict-transport-security"].startswith("max-age=")


async def test_pages_carry_a_content_security_policy_and_are_not_cached() -> None:
    fakes = FakeServices()
    async with running(fakes.app()) as client:
        r = await client.get("/dang-nhap")
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["cache-control"] == "no-store"


async def test_a_session_intake_no_longer_accepts_is_sent_to_sign_in_on_the_next_page() -> None:
    fakes = FakeServices()
    async with running(fakes.app()) as client:
        await sign_in(client)
        assert (await client.get("/vu-viec")).status_code == 200
        fakes.ended.add("huyen")  # an admin disabled the account (intake's /me answers 401)
        fakes.requests.clear()
        r = await client.get("/vu-viec")
        assert r.status_code == 303
        assert r.headers["location"] == "/dang-nhap?next=%2Fvu-viec&het_han=1"
        # nothing else was asked with the ended session
        assert [q.url.path for q in fakes.requests] == ["/api/v1/me"]
        login = await client.get(r.headers["location"])
        assert "không còn hiệu lực" in login.text
        fakes.ended.clear()
        assert (await client.get("/vu-viec")).status_code == 303  # the cookie was cleared


async def test_every_page_asks_intake_who_the_session_belongs_to() -> None:
    fakes = FakeServices()
    async with running(fakes.app()) as client:
        await sign_in(client)
        for path in ("/", "/hoat-dong", "/bao-cao", "/vu-viec"):
            fakes.requests.clear()
            assert (await client.get(path)).status_code == 200
            checks = [q for q in fakes.requests if q.url.path == "/api/v1/me"]
            assert len(checks) == 1, path
            assert checks[0].headers["authorization"] == "Bearer tok-huyen"


async def test_when_intake_is_down_the_session_stands_and_the_page_names_the_missing_part() -> None:
    fakes = FakeServices()
    async with running(fakes.app()) as client:
        await sign_in(client)
        fakes.down.add("intake")
        page = await client.get("/vu-viec")
        assert page.status_code == 200  # cases still checks the token itself
        assert "Thành phố Tuy Hoà" in page.text


async def test_a_session_whose_account_answers_differently_is_ended() -> None:
    fakes = FakeServices()
    async with running(fakes.app()) as client:
        await sign_in(client)
        fakes.extra.append(
            lambda q: (
                httpx.Response(
                    200,
                    json={
                        "subject": "huyen",
                        "username": "huyen",
                        "kind": "user",
                        "role": "commune_staff",
                        "unit_id": "22015",
                        "unit_name": "Phường 1",
                    },
                )
                if q.url.path == "/api/v1/me"
                else None
            )
        )
        r = await client.get("/")
        assert r.status_code == 303 and "het_han=1" in r.headers["location"]

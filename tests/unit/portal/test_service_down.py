"""A service that is down: a clear Vietnamese message where its data would have been, the rest
of the page working, and never a stack trace."""

from __future__ import annotations

import httpx

from tests.support.http import running
from tests.unit.portal.fakes import FakeServices, sign_in

DOWN = "tạm thời không trả lời"


async def test_the_dashboard_says_which_part_is_missing_and_shows_the_rest() -> None:
    fakes = FakeServices()
    async with running(fakes.app()) as client:
        await sign_in(client)
        fakes.down.add("aggregation")
        page = await client.get("/")
        assert page.status_code == 200
        assert f"Dịch vụ tổng hợp số liệu {DOWN}" in page.text
        assert "Traceback" not in page.text
        # intake, reminders and cases still answer: their parts are there
        assert "Thành phố Tuy Hoà" in page.text
        assert "Không có vụ việc nào quá hạn." in page.text
        # the rates of the latest periods, asked next (htmx): aggregation's message in their place
        part = await client.get("/tong-quan/ky-bao-cao", headers={"HX-Request": "true"})
        assert part.status_code == 200 and "<html" not in part.text
        assert "Báo cáo kết quả thực hiện hàng tháng" in part.text  # the plan's schedule, intake's
        assert f"Dịch vụ tổng hợp số liệu {DOWN}" in part.text


async def test_each_missing_service_is_named_on_the_part_that_needed_it() -> None:
    fakes = FakeServices()
    async with running(fakes.app()) as client:
        await sign_in(client)
        fakes.down.update({"cases", "reminders"})
        page = await client.get("/")
        assert page.status_code == 200
        assert f"Dịch vụ vụ việc pháp lý {DOWN}" in page.text
        assert "Giám sát ít nhất 01 chính sách" in page.text  # aggregation's targets are shown
        reports = await client.get("/bao-cao")
        assert reports.status_code == 200
        assert f"Dịch vụ nhắc việc {DOWN}" in reports.text  # the unit's obligations
        assert "Báo cáo các đơn vị cấp dưới đã gửi" in reports.text  # intake's part is there


async def test_a_list_whose_service_is_down_keeps_its_page_and_filters() -> None:
    fakes = FakeServices()
    async with running(fakes.app()) as client:
        await sign_in(client)
        fakes.down.add("cases")
        page = await client.get("/vu-viec")
        assert page.status_code == 200
        assert f"Dịch vụ vụ việc pháp lý {DOWN}" in page.text
        assert 'aria-label="Lọc danh sách vụ việc"' in page.text


async def test_a_service_that_fails_with_500_is_shown_like_one_that_is_down() -> None:
    fakes = FakeServices()
    async with running(fakes.app()) as client:
        await sign_in(client)
        fakes.extra.append(
            lambda q: (
                httpx.Response(500, text="Internal Server Error")
                if q.url.path == "/api/v1/activities"
                else None
            )
        )
        page = await client.get("/hoat-dong")
        assert page.status_code == 200
        assert f"Dịch vụ tiếp nhận dữ liệu {DOWN}" in page.text
        assert "Internal Server Error" not in page.text


async def test_sign_in_while_intake_is_down_says_so_and_keeps_the_form() -> None:
    fakes = FakeServices()
    fakes.down.add("intake")
    async with running(fakes.app()) as client:
        r = await sign_in(client)
        assert r.status_code == 401
        assert "Dịch vụ đăng nhập tạm thời không trả lời" in r.text
        assert 'name="username"' in r.text


async def test_a_page_that_needs_only_a_service_that_is_down_answers_503_in_vietnamese() -> None:
    fakes = FakeServices()
    async with running(fakes.app()) as client:
        await sign_in(client)
        fakes.down.add("cases")
        page = await client.get("/vu-viec/6f1f0a52-3b61-4d7e-9a57-0f0f4b3c2a11")
        assert page.status_code == 503
        assert f"Dịch vụ vụ việc pháp lý {DOWN}" in page.text
        assert "Traceback" not in page.text


async def test_a_body_a_service_finds_too_large_is_said_on_the_form_not_as_an_outage() -> None:
    fakes = FakeServices()
    async with running(fakes.app()) as client:
        await sign_in(client)
        fakes.extra.append(
            lambda q: (
                httpx.Response(413, json={"detail": "too large"})
                if q.method == "POST" and q.url.path == "/api/v1/activities"
                else None
            )
        )
        page = await client.get("/hoat-dong/moi/exemplar")
        token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        r = await client.post(
            "/hoat-dong/moi/exemplar",
            data={"csrf_token": token, "unit_id": "555", "title": "x", "occurred_on": "1/3/2021"},
        )
        assert r.status_code == 422
        assert "Nội dung gửi đi quá lớn" in r.text
        assert DOWN not in r.text

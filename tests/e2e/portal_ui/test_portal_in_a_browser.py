"""Union staff using the portal in headless Chromium against the whole stack (issue 11):
a commune records a supervision activity (first with a mistake the service refuses) and submits
its monthly report; its district sees it counted on the dashboard, works a case, and cannot open
another district's case. axe-core checks every page; screenshots are kept as artefacts."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.e2e.portal_ui.browser import (
    accessible,
    dashboard_complete,
    screenshot,
    sign_in,
    until,
)
from tests.support.process import ServiceProcess

pytestmark = pytest.mark.e2e


def test_a_commune_records_a_supervision_and_submits_its_monthly_report(
    stack: dict[str, ServiceProcess], accounts: dict[str, str], new_page: Any
) -> None:
    portal = stack["portal"].url
    page = new_page()
    checked: list[str] = []

    page.goto(portal + "/")
    accessible(page, checked)  # the sign-in page
    sign_in(page, portal, "xa-phuong1", accounts["xa-phuong1"])
    header = page.locator("header.top").inner_text()
    assert "Phường 1" in header and "Cán bộ Hội LHPN cơ sở" in header
    dashboard_complete(page)
    accessible(page, checked)

    page.click("nav.main-nav >> text=Hoạt động")
    accessible(page, checked)
    page.click("text=Ghi nhận hoạt động mới")
    accessible(page, checked)
    page.click("a[href='/hoat-dong/moi/supervision']")
    page.fill("#occurred_on", "05/03/2021")
    page.fill("#title", "Giám sát thực hiện chính sách hỗ trợ phụ nữ nghèo")
    page.select_option("#role", "lead")
    page.fill("#m-recommendations", "3")
    page.fill("#m-recommendations_accepted", "5")  # more accepted than made: intake refuses
    page.click("form.form button[type=submit]")
    error = page.locator("#loi-metrics-recommendations_accepted")
    assert error.inner_text() == (
        "“Số kiến nghị được tiếp thu” (5) không được lớn hơn “Số kiến nghị” (3)."
    )
    assert page.locator("#m-recommendations_accepted").get_attribute("aria-invalid") == "true"
    assert page.input_value("#title") == "Giám sát thực hiện chính sách hỗ trợ phụ nữ nghèo"
    screenshot(page, "activity-form-with-error")
    accessible(page, checked)

    page.fill("#m-recommendations_accepted", "2")
    page.click("form.form button[type=submit]")
    page.wait_for_url(re.compile(r"/hoat-dong/[0-9a-f-]{36}$"))
    assert "Đã ghi nhận hoạt động" in page.locator(".flash").inner_text()
    facts = page.locator("dl.facts").inner_text()
    assert "05/03/2021" in facts and "Chủ trì" in facts and "Số kiến nghị được tiếp thu" in facts
    accessible(page, checked)

    page.click("nav.main-nav >> text=Báo cáo")
    row = page.locator("tr", has_text="Tháng 12/2021")
    assert "Quá hạn, chưa nộp" in row.inner_text()
    accessible(page, checked)
    row.locator("a", has_text="Nộp báo cáo").click()
    page.fill("#i-supervision-count", "1")
    page.fill("#i-supervision-recommendations", "3")
    page.fill("#narrative", "Trong tháng, Hội đã giám sát 01 chính sách, có 03 kiến nghị.")
    page.set_input_files(
        "#attachments",
        files=[
            {
                "name": "bao-cao-thang-12.txt",
                "mimeType": "text/plain",
                "buffer": "Báo cáo tháng 12/2021 – Hội LHPN Phường 1".encode(),
            }
        ],
    )
    accessible(page, checked)
    page.click("form.form button[type=submit]")
    page.wait_for_url(re.compile(r"/bao-cao$"))
    assert (
        "Đã nộp báo cáo tháng 12/2021, tính là nộp sau hạn." in page.locator(".flash").inner_text()
    )

    def fulfilled() -> bool:
        page.reload()
        return "Đã nộp muộn" in page.locator("tr", has_text="Tháng 12/2021").inner_text()

    until(fulfilled)  # reminders learnt it from report.submitted
    assert page.console_errors == [] or all(
        "Content Security Policy" not in e for e in page.console_errors
    ), page.console_errors
    assert len(checked) >= 8


def test_the_district_sees_the_commune_counted_and_cannot_open_another_districts_case(
    stack: dict[str, ServiceProcess], accounts: dict[str, str], new_page: Any
) -> None:
    portal, cases = stack["portal"].url, stack["cases"].url
    page = new_page()
    checked: list[str] = []
    sign_in(page, portal, "huyen-tuyhoa", accounts["huyen-tuyhoa"])

    def counted() -> bool:
        page.reload()
        t2 = page.locator("table.targets tr", has_text="T2").first.inner_text()
        return "1/17" in t2

    until(counted)  # the commune's supervision, through activity.recorded → aggregation
    page.locator("summary", has_text="chỉ tiêu T2").click()
    not_met = page.locator("tr.details-row", has_text="chỉ tiêu T2").inner_text()
    assert "Phường 8" in not_met and "Phường 1," not in not_met
    dashboard_complete(page)
    rates = page.locator("tr", has_text="tháng 12/2021").first.inner_text()
    assert re.search(r"\b17\s+1\s+0\b", rates.replace("\n", " ").replace("\t", " ")), rates
    screenshot(page, "dashboard-district")
    accessible(page, checked)

    page.click("nav.main-nav >> text=Vụ việc pháp lý")
    accessible(page, checked)
    page.click("text=Tiếp nhận vụ việc mới")
    page.fill("#received_on", "02/04/2021")
    page.select_option("#kind", "complaint")
    page.select_option("#topic", "domestic_violence")
    page.select_option("#channel", "walk_in")
    page.fill("#requester-name", "Trần Thị E2E")
    page.fill("#requester-phone", "0905 123 456")
    page.fill("#summary", "Đề nghị hỗ trợ về bạo lực gia đình.")
    page.check("#flag-domestic_violence_victim")
    accessible(page, checked)
    page.click("form.form button[type=submit]")
    page.wait_for_url(re.compile(r"/vu-viec/[0-9a-f-]{36}$"))
    assert "Trần Thị E2E" in page.locator("#ca-nhan").locator("..").inner_text()
    page.click("button[name=to][value=accepted]")
    page.wait_for_load_state()
    assert "Đã chuyển hồ sơ sang “Đã thụ lý”" in page.locator(".flash").inner_text()
    timeline = page.locator("ol.timeline").inner_text()
    assert "Tiếp nhận: Đã tiếp nhận" in timeline and "Đã thụ lý" in timeline
    screenshot(page, "case-page")
    accessible(page, checked)

    # a case of Sông Cầu, opened there: Tuy Hoà may not open it
    with httpx.Client(timeout=10) as http:
        tok = http.post(
            f"{stack['intake'].url}/api/v1/auth/token",
            data={"username": "huyen-songcau", "password": accounts["huyen-songcau"]},
        ).json()["access_token"]
        other = http.post(
            f"{cases}/api/v1/cases",
            json={
                "unit_id": "557",
                "kind": "consultation",
                "topic": "land",
                "channel": "hotline",
                "received_on": "2021-05-03",
                "requester": {"name": "Lê Thị Sông Cầu"},
            },
            headers={"Authorization": f"Bearer {tok}"},
        )
        assert other.status_code == 201, other.text
    response = page.goto(f"{portal}/vu-viec/{other.json()['case_id']}")
    assert response is not None and response.status == 403
    assert "Không có quyền truy cập" in page.locator("h1").inner_text()
    assert "Lê Thị Sông Cầu" not in page.content()
    accessible(page, checked)

    for path in ("/hoat-dong", "/bao-cao"):
        page.goto(portal + path)
        accessible(page, checked)


def test_the_pages_work_on_a_phone_sized_screen_and_the_admin_pages_pass_axe(
    stack: dict[str, ServiceProcess], accounts: dict[str, str], new_page: Any
) -> None:
    portal = stack["portal"].url
    phone = new_page(390, 844)
    checked: list[str] = []
    sign_in(phone, portal, "huyen-tuyhoa", accounts["huyen-tuyhoa"])
    dashboard_complete(phone)
    width = phone.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390, f"the dashboard scrolls sideways on a phone ({width}px)"
    screenshot(phone, "dashboard-phone")
    accessible(phone, checked)

    admin = new_page()
    sign_in(admin, portal, "admin", "admin", "/quan-tri")
    assert "Quản trị hệ thống" in admin.locator("header.top").inner_text()
    accessible(admin, checked)
    admin.fill("#as_of_on", "20/01/2021")  # a sweep as of a day early in the plan year
    admin.click("form[action='/quan-tri/quet'] button")
    admin.wait_for_load_state()
    assert "Kết quả lần quét" in admin.locator("main").inner_text()
    accessible(admin, checked)
    admin.goto(portal + "/")
    dashboard_complete(admin)
    accessible(admin, checked)

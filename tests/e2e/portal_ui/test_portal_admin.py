"""Quản trị in headless Chromium against the whole stack (issue 11): an admin creates an account
(first with a mistake intake refuses), disables it — its user is signed out on the next page —,
unlocks it and resets its password; the user changes their own password; the admin moves them to
another ward (signed out again, then signed in there); the admin creates an
API key, shown once, that another system uses until the admin revokes it; the admin changes the
reminder policy (first with a step name reminders refuses) and sees it, and replays then purges
a message intake could not read. axe-core checks every page."""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.e2e.portal_ui.browser import accessible, screenshot, sign_in, until
from tests.support.amqp import publish_raw
from tests.support.infra import RabbitVhost
from tests.support.process import ServiceProcess

pytestmark = pytest.mark.e2e

NEW_USER = "xa-phuong2-moi"  # Phường 2 of Tuy Hoà: no other scenario signs in there
DL_ID = "e2e-unreadable-1"


def test_an_admin_disables_a_user_who_is_then_signed_out(
    stack: dict[str, ServiceProcess], accounts: dict[str, str], new_page: Any
) -> None:
    portal = stack["portal"].url
    admin, user = new_page(), new_page()
    checked: list[str] = []

    sign_in(admin, portal, "admin", "admin", "/quan-tri/nguoi-dung")
    accessible(admin, checked)
    admin.click("text=Tạo tài khoản mới")
    admin.wait_for_url(re.compile(r"/quan-tri/nguoi-dung/moi$"))
    accessible(admin, checked)
    admin.fill("#username", NEW_USER)
    admin.fill("#password", "matkhau-dau-tien")
    admin.fill("#password2", "matkhau-dau-tien")
    admin.select_option("#role", "commune_staff")  # no unit chosen: intake refuses
    admin.click("form.form button[type=submit]")
    assert admin.locator("#loi-unit_id").inner_text() == "Cán bộ phải gắn với một đơn vị."
    assert admin.locator("#unit_id").get_attribute("aria-invalid") == "true"
    assert admin.input_value("#username") == NEW_USER
    screenshot(admin, "admin-new-user-with-error")
    accessible(admin, checked)
    admin.fill("#password", "matkhau-dau-tien")  # passwords are never sent back to the page
    admin.fill("#password2", "matkhau-dau-tien")
    admin.select_option("#unit_id", "22021")
    admin.click("form.form button[type=submit]")
    admin.wait_for_url(re.compile(re.escape(f"/quan-tri/nguoi-dung/{NEW_USER}") + "$"))
    assert f"Đã tạo tài khoản “{NEW_USER}”" in admin.locator(".flash").inner_text()
    assert "Phường 2" in admin.locator("dl.facts").inner_text()
    accessible(admin, checked)

    sign_in(user, portal, NEW_USER, "matkhau-dau-tien", "/hoat-dong")
    header = user.locator("header.top").inner_text()
    assert "Phường 2" in header and "Cán bộ Hội LHPN cơ sở" in header

    admin.click("button:has-text('Khóa tài khoản')")
    admin.wait_for_load_state()
    assert "Đã khóa tài khoản" in admin.locator(".flash").inner_text()
    assert "Đã khóa" in admin.locator(".page-head .badge").inner_text()
    screenshot(admin, "admin-user-disabled")
    accessible(admin, checked)

    user.click("nav.main-nav >> text=Báo cáo")  # the very next page
    user.wait_for_url(re.compile(r"/dang-nhap\?next=%2Fbao-cao&het_han=1$"))
    assert "không còn hiệu lực" in user.locator(".notice").inner_text()
    user.fill("#username", NEW_USER)
    user.fill("#password", "matkhau-dau-tien")
    user.click("form.form button[type=submit]")
    assert "Sai tên đăng nhập hoặc mật khẩu." in user.locator(".notice-error").inner_text()
    accessible(user, checked)

    # unlocked, with a new password the admin gives; the user then chooses their own
    admin.click("button:has-text('Mở khóa tài khoản')")
    admin.wait_for_load_state()
    assert "Đã mở khóa" in admin.locator(".flash").inner_text()
    admin.fill("#new-password", "matkhau-quan-tri-dat")
    admin.fill("#new-password2", "matkhau-quan-tri-dat")
    admin.click("button:has-text('Đặt lại mật khẩu')")
    admin.wait_for_load_state()
    assert "Đã đặt lại mật khẩu" in admin.locator(".flash").inner_text()

    user.fill("#username", NEW_USER)
    user.fill("#password", "matkhau-quan-tri-dat")
    user.click("form.form button[type=submit]")
    user.wait_for_url(re.compile(r"/bao-cao$"))  # back to the page asked for
    user.click("header.top >> a.who-account")
    accessible(user, checked)
    user.fill("#current_password", "sai-mat-khau")
    user.fill("#new_password", "matkhau-cua-toi")
    user.fill("#new_password2", "matkhau-cua-toi")
    user.click("form.form button[type=submit]")
    assert user.locator("#loi-current_password").inner_text() == "Mật khẩu hiện tại không đúng."
    accessible(user, checked)
    user.fill("#current_password", "matkhau-quan-tri-dat")
    user.fill("#new_password", "matkhau-cua-toi")
    user.fill("#new_password2", "matkhau-cua-toi")
    user.click("form.form button[type=submit]")
    user.wait_for_url(re.compile(r"/tai-khoan$"))
    assert "Đã đổi mật khẩu" in user.locator(".flash").inner_text()
    user.click("nav.main-nav >> text=Hoạt động")  # this session goes on with the new token
    assert user.url.endswith("/hoat-dong")
    with httpx.Client(timeout=10) as http:
        old = http.post(
            f"{stack['intake'].url}/api/v1/auth/token",
            data={"username": NEW_USER, "password": "matkhau-quan-tri-dat"},
        )
        assert old.status_code == 401

    # moved to another ward: signed out on the next page, signed in there again
    admin.goto(f"{portal}/quan-tri/nguoi-dung/{NEW_USER}")
    admin.select_option("#r-unit_id", "22024")  # Phường 9
    admin.click("button:has-text('Lưu vai trò, đơn vị')")
    admin.wait_for_load_state()
    assert "Đã đổi vai trò, đơn vị" in admin.locator(".flash").inner_text()
    user.click("nav.main-nav >> text=Vụ việc pháp lý")
    user.wait_for_url(re.compile(r"/dang-nhap\?next=%2Fvu-viec&het_han=1$"))
    user.fill("#username", NEW_USER)
    user.fill("#password", "matkhau-cua-toi")
    user.click("form.form button[type=submit]")
    user.wait_for_url(re.compile(r"/vu-viec$"))
    assert "Phường 9" in user.locator("header.top").inner_text()

    admin.goto(f"{portal}/quan-tri/nguoi-dung?role=commune_staff")
    row = admin.locator("table.users tr", has_text=NEW_USER)
    assert "Đang hoạt động" in row.inner_text() and "Phường 9" in row.inner_text()
    accessible(admin, checked)
    assert len(checked) >= 9


def test_an_admin_creates_an_api_key_shown_once_and_revokes_it(
    stack: dict[str, ServiceProcess], accounts: dict[str, str], new_page: Any
) -> None:
    portal, intake = stack["portal"].url, stack["intake"].url
    admin = new_page()
    checked: list[str] = []
    sign_in(admin, portal, "admin", "admin", "/quan-tri/khoa-api")
    accessible(admin, checked)

    admin.fill("#k-name", "Hệ thống hồ sơ")  # not a key name: intake says which rule
    admin.select_option("#k-unit", "555")
    admin.fill("#k-routes", "me.read\nactivities.read")
    admin.click("form.form button[type=submit]")
    assert admin.locator("#loi-name").inner_text() == "Không đúng định dạng."
    assert admin.input_value("#k-routes") == "me.read\nactivities.read"
    accessible(admin, checked)
    admin.fill("#k-name", "ho-so-tuy-hoa")
    admin.click("form.form button[type=submit]")
    key = admin.locator("#the-key").inner_text().strip()
    assert key.startswith("lhpn_")
    assert "một lần" in admin.locator(".notice").inner_text()
    screenshot(admin, "admin-api-key-shown-once")
    accessible(admin, checked)

    with httpx.Client(base_url=intake, timeout=10, headers={"X-API-Key": key}) as system:
        me = system.get("/api/v1/me")
        assert me.status_code == 200, me.text
        assert me.json()["kind"] == "api_key" and me.json()["unit_id"] == "555"

        admin.click("text=Về danh sách khóa")
        row = admin.locator("table.keys tr", has_text="ho-so-tuy-hoa")
        assert "Đang dùng" in row.inner_text()
        assert key not in admin.content()  # never shown again
        accessible(admin, checked)
        row.locator("button", has_text="Thu hồi").click()
        admin.wait_for_load_state()
        assert "Đã thu hồi khóa “ho-so-tuy-hoa”" in admin.locator(".flash").inner_text()
        assert "Đã thu hồi" in admin.locator("table.keys tr", has_text="ho-so-tuy-hoa").inner_text()
        accessible(admin, checked)
        assert system.get("/api/v1/me").status_code == 401  # refused from the next request


def test_an_admin_changes_the_reminder_policy_and_replays_then_purges_a_dead_letter(
    stack: dict[str, ServiceProcess], rabbit: RabbitVhost, new_page: Any
) -> None:
    portal = stack["portal"].url
    admin = new_page()
    checked: list[str] = []

    # the reminder policy: the default's first step, first with a name reminders refuses
    sign_in(admin, portal, "admin", "admin", "/quan-tri/chinh-sach-nhac-han")
    current = admin.locator("section[aria-labelledby=cs-hien-tai]")
    assert "3 ngày trước hạn" in current.inner_text()
    accessible(admin, checked)
    admin.fill("#reports-steps-0-step", "nhắc sớm")
    admin.fill("#reports-steps-0-days", "5")
    admin.click("form[action='/quan-tri/chinh-sach-nhac-han'] button[type=submit]")
    error = admin.locator("#loi-reports-steps-0-step").inner_text()
    assert "chữ thường không dấu" in error
    assert admin.locator("#reports-steps-0-step").get_attribute("aria-invalid") == "true"
    assert admin.input_value("#reports-steps-0-days") == "5"  # what was typed stays
    accessible(admin, checked)
    admin.fill("#reports-steps-0-step", "before_5d")
    admin.click("form[action='/quan-tri/chinh-sach-nhac-han'] button[type=submit]")
    admin.wait_for_url(re.compile(r"/quan-tri/chinh-sach-nhac-han$"))
    assert "Đã lưu chính sách nhắc hạn (phiên bản 1)" in admin.locator(".flash").inner_text()
    shown = admin.locator("section[aria-labelledby=cs-hien-tai]").inner_text()
    assert "before_5d" in shown and "5 ngày trước hạn" in shown
    assert "Phiên bản 1" in shown
    screenshot(admin, "admin-reminder-policy")
    accessible(admin, checked)
    with httpx.Client(timeout=10) as http:
        tok = http.post(
            f"{stack['intake'].url}/api/v1/auth/token",
            data={"username": "admin", "password": "admin"},
        ).json()["access_token"]
        stored = http.get(
            f"{stack['reminders'].url}/api/v1/reminder-policy",
            headers={"Authorization": f"Bearer {tok}"},
        ).json()
    assert stored["reports"]["steps"][0] == {
        "step": "before_5d",
        "offset": "-P5D",
        "audience": "unit",
    }

    # a message intake cannot read lands in its dead-letter queue
    unreadable = publish_raw(
        rabbit.system.url, "lhpn.inbound", "activity.recorded.v1", b"{ not json", DL_ID
    )
    with ThreadPoolExecutor(1) as pool:  # Playwright's own event loop runs in this thread
        pool.submit(asyncio.run, unreadable).result(timeout=30)

    def intake_holds_it() -> bool:
        admin.goto(portal + "/quan-tri/hang-doi-loi")
        intake = admin.locator("section[aria-labelledby=dlq-intake]").inner_text()
        return "1 thư trong hàng đợi lỗi" in intake

    until(intake_holds_it, timeout=30)
    intake = admin.locator("section[aria-labelledby=dlq-intake]")
    assert "intake.inbound" in intake.inner_text()
    for name in ("cases", "reminders", "aggregation"):  # every service's part answered
        part = admin.locator(f"section[aria-labelledby=dlq-{name}]").inner_text()
        assert "tạm thời không trả lời" not in part, name
    screenshot(admin, "admin-dead-letters")
    accessible(admin, checked)

    admin.select_option("#d-service", "intake")
    admin.fill("#d-queue", "intake.inbound")
    admin.fill("#d-id", DL_ID)
    admin.click("button:has-text('Xem thư')")
    assert "{ not json" in admin.locator("pre.message-body").inner_text()
    accessible(admin, checked)
    admin.click("button:has-text('Phát lại thư này')")
    admin.wait_for_url(re.compile(r"/quan-tri/hang-doi-loi$"))
    assert "Đã phát lại 1 thư về hàng đợi intake.inbound." in admin.locator(".flash").inner_text()
    accessible(admin, checked)

    until(intake_holds_it, timeout=30)  # still unreadable: intake dead-letters it again
    admin.locator("section[aria-labelledby=dlq-intake] a", has_text="Xóa").first.click()
    admin.wait_for_url(re.compile(r"/quan-tri/hang-doi-loi/xoa\?"))
    assert "Xóa thư khỏi hàng đợi lỗi?" in admin.locator("main").inner_text()
    accessible(admin, checked)
    admin.click("button:has-text('Xóa vĩnh viễn')")
    admin.wait_for_url(re.compile(r"/quan-tri/hang-doi-loi$"))
    assert "đã xóa 1 thư" in admin.locator(".flash").inner_text()
    intake = admin.locator("section[aria-labelledby=dlq-intake]")
    assert "Không có thư lỗi." in intake.inner_text()
    accessible(admin, checked)
    assert len(checked) >= 8

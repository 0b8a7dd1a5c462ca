"""Quản trị › Chính sách nhắc hạn: the policy in days before/after the due instant, saved as
reminders' ISO 8601 offsets, reminders' 422 next to the field, a 409 said with the typed steps
kept."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from portal.policy_form import _offset, describe
from tests.support.http import running
from tests.unit.portal.fakes import FakeServices, csrf_of, sign_in
from tests.unit.portal.test_admin_pages import admin_fakes, forms_without_token

BASE = "/quan-tri/chinh-sach-nhac-han"
POLICY: dict[str, Any] = {
    "revision": 2,
    "reports": {
        "steps": [
            {"step": "before_3d", "offset": "-P3D", "audience": "unit"},
            {"step": "parent_digest", "offset": "P5D", "audience": "parent"},
        ],
        "by_report_type": {},
    },
    "cases": {
        "steps": [
            {"step": "warning", "offset": "-P2D", "audience": "unit"},
            {"step": "overdue", "offset": "PT0S", "audience": "unit"},
        ]
    },
    "updated_at": "2026-12-01T01:00:00Z",
    "updated_by": "admin",
}


def policy_fakes(put: httpx.Response | None = None) -> FakeServices:
    fakes = admin_fakes()

    def handler(q: httpx.Request) -> httpx.Response | None:
        if q.url.path != "/api/v1/reminder-policy":
            return None
        if q.method == "GET":
            return httpx.Response(200, json=POLICY)
        return put or httpx.Response(200, json={**json.loads(q.content), "revision": 3})

    fakes.extra.append(handler)
    return fakes


def the_form(token: str, **more: str) -> dict[str, str]:
    """The form as the page draws it, the monthly report given steps of its own."""
    return {
        "csrf_token": token,
        "revision": "2",
        "reports.steps.0.step": "before_3d",
        "reports.steps.0.days": "3",
        "reports.steps.0.when": "before",
        "reports.steps.0.audience": "unit",
        "reports.steps.1.step": "",
        "reports.steps.1.days": "",
        "reports.steps.1.when": "before",
        "reports.steps.1.audience": "unit",
        "reports.steps.2.step": "parent_digest",
        "reports.steps.2.days": "5",
        "reports.steps.2.when": "after",
        "reports.steps.2.audience": "parent",
        "reports.by_report_type.monthly.title": "Báo cáo tháng (monthly)",
        "reports.by_report_type.monthly.own": "yes",
        "reports.by_report_type.monthly.0.step": "truoc_nua_ngay",
        "reports.by_report_type.monthly.0.days": "0,5",
        "reports.by_report_type.monthly.0.when": "before",
        "reports.by_report_type.monthly.0.audience": "unit",
        "cases.steps.0.step": "overdue",
        "cases.steps.0.days": "0",
        "cases.steps.0.when": "after",
        "cases.steps.0.audience": "unit",
        **more,
    }


def puts(fakes: FakeServices) -> list[Any]:
    return [
        json.loads(q.content)
        for q in fakes.requests
        if q.method == "PUT" and q.url.path == "/api/v1/reminder-policy"
    ]


@pytest.mark.parametrize(
    ("offset", "words"),
    [
        ("-P3D", "3 ngày trước hạn"),
        ("P5D", "5 ngày sau hạn"),
        ("PT0S", "đúng lúc đến hạn"),
        ("-PT43200S", "0,5 ngày trước hạn"),
        ("P1DT12H", "1,5 ngày sau hạn"),
    ],
)
def test_an_offset_is_said_in_days_before_or_after_the_due_instant(offset: str, words: str) -> None:
    assert describe(offset) == words


@pytest.mark.parametrize(
    ("days", "when", "offset"),
    [
        ("3", "before", "-P3D"),
        ("0", "before", "P0D"),
        ("2", "after", "P2D"),
        ("0,5", "before", "-PT43200S"),
        ("ba", "before", None),
        ("-3", "before", None),
    ],
)
def test_days_typed_on_the_form_become_an_iso_duration(
    days: str, when: str, offset: str | None
) -> None:
    assert _offset(days, when) == offset


async def test_the_page_shows_each_report_type_and_cases_in_days() -> None:
    fakes = policy_fakes()
    async with running(fakes.app()) as client:
        await sign_in(client)
        page = await client.get(BASE)

    assert page.status_code == 200
    assert "Phiên bản 2" in page.text
    assert "3 ngày trước hạn" in page.text
    assert "5 ngày sau hạn" in page.text
    assert "Đơn vị cấp trên" in page.text
    assert "Báo cáo kết quả thực hiện hàng tháng (monthly)" in page.text  # the plan's title
    assert "Dùng các bước mặc định." in page.text
    assert "<details><summary>Các bước riêng" in page.text  # folded: monthly has none
    assert "Hạn xử lý vụ việc pháp lý" in page.text
    assert "đúng lúc đến hạn" in page.text
    assert 'name="revision" value="2"' in page.text
    assert forms_without_token(page.text) == []


async def test_saving_sends_iso_offsets_and_only_the_report_types_ticked() -> None:
    fakes = policy_fakes()
    async with running(fakes.app()) as client:
        await sign_in(client)
        page = await client.get(BASE)
        r = await client.post(BASE, data=the_form(csrf_of(page.text)))
        assert r.status_code == 303, r.text
        shown = await client.get(r.headers["location"])

    assert puts(fakes) == [
        {
            "revision": 2,
            "reports": {
                "steps": [
                    {"step": "before_3d", "offset": "-P3D", "audience": "unit"},
                    {"step": "parent_digest", "offset": "P5D", "audience": "parent"},
                ],
                "by_report_type": {
                    "monthly": [
                        {"step": "truoc_nua_ngay", "offset": "-PT43200S", "audience": "unit"}
                    ]
                },
            },
            "cases": {"steps": [{"step": "overdue", "offset": "P0D", "audience": "unit"}]},
        }
    ]
    assert "Đã lưu chính sách nhắc hạn (phiên bản 3)" in shown.text


async def test_a_step_reminders_refuses_is_marked_next_to_its_field() -> None:
    problem = [
        {
            "loc": ["body", "reports", "steps", 1, "step"],
            "msg": "Bước 'before_3d' đã có ở trên; mỗi tên một lần.",
            "type": "value_error",
        }
    ]
    fakes = policy_fakes(httpx.Response(422, json={"detail": problem}))
    async with running(fakes.app()) as client:
        await sign_in(client)
        page = await client.get(BASE)
        form = the_form(csrf_of(page.text), **{"reports.steps.2.step": "before_3d"})
        r = await client.post(BASE, data=form)

    assert r.status_code == 422
    # the empty row is dropped: the second step sent is the third row typed, shown second
    assert (
        'id="loi-reports-steps-1-step">Bước &#39;before_3d&#39; đã có ở trên; mỗi tên một lần.'
        in r.text
    )
    assert 'name="reports.steps.1.step" value="before_3d"' in r.text
    assert 'name="revision" value="2"' in r.text
    assert "<details open><summary>Các bước riêng" in r.text  # monthly's own, ticked


async def test_days_that_are_not_a_number_are_said_before_anything_is_sent() -> None:
    fakes = policy_fakes()
    async with running(fakes.app()) as client:
        await sign_in(client)
        page = await client.get(BASE)
        form = the_form(csrf_of(page.text), **{"cases.steps.0.days": "ba"})
        r = await client.post(BASE, data=form)

    assert r.status_code == 422
    assert 'id="loi-cases-steps-0-offset">Số ngày phải là một số' in r.text
    assert 'aria-invalid="true"' in r.text
    assert puts(fakes) == []


async def test_a_policy_changed_meanwhile_is_said_and_what_was_typed_is_kept() -> None:
    conflict = {"detail": "Chính sách nhắc hạn đã được thay đổi (nay là phiên bản 3) …"}
    fakes = policy_fakes(httpx.Response(409, json=conflict))
    async with running(fakes.app()) as client:
        await sign_in(client)
        page = await client.get(BASE)
        POLICY["revision"] = 3
        try:
            r = await client.post(BASE, data=the_form(csrf_of(page.text), revision="2"))
        finally:
            POLICY["revision"] = 2

    assert r.status_code == 409
    assert "nay là phiên bản 3" in r.text
    assert 'value="truoc_nua_ngay"' in r.text
    assert 'name="revision" value="3"' in r.text  # the admin has seen the current one now


async def test_reminders_down_shows_a_message_not_a_form() -> None:
    fakes = admin_fakes()
    fakes.down.add("reminders")
    async with running(fakes.app()) as client:
        await sign_in(client)
        page = await client.get(BASE)

    assert page.status_code == 200
    assert "Dịch vụ nhắc việc tạm thời không trả lời" in page.text
    assert "Lưu chính sách" not in page.text

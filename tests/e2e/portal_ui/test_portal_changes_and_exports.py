"""Correcting and voiding an activity through the portal, and the exports the dashboard links to,
downloaded in headless Chromium and opened with openpyxl and python-docx (issue 11): the
workbook follows the correction and the void, and the compliance workbook and the thematic
report hold the figures aggregation answers."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from docx import Document
from openpyxl import load_workbook

from tests.e2e.portal_ui.browser import accessible, sign_in, until
from tests.support.process import ServiceProcess

pytestmark = pytest.mark.e2e

OUTREACH = "Tuyên truyền Luật Phòng, chống bạo lực gia đình năm 2022 – phiên thử nghiệm"


def download(page: Any, link_text: str) -> bytes:
    """Click a link of the page and return the file the browser saved."""
    with page.expect_download() as event:
        page.click(f"a:has-text('{link_text}')")
    path = event.value.path()
    return Path(path).read_bytes()


def indicator_rows(workbook: bytes) -> dict[str, tuple[Any, Any]]:
    """Sheet "Chỉ số": indicator code → (recorded, declared)."""
    sheet = load_workbook(io.BytesIO(workbook))["Chỉ số"]
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][0] == "Mã chỉ số" and rows[0][3] == "Theo hoạt động đã ghi nhận"
    return {str(r[0]): (r[3], r[4]) for r in rows[1:] if r[0]}


def test_a_commune_corrects_then_voids_an_activity_and_the_district_export_follows(
    stack: dict[str, ServiceProcess], accounts: dict[str, str], new_page: Any
) -> None:
    portal = stack["portal"].url
    commune, district = new_page(), new_page()
    checked: list[str] = []
    sign_in(commune, portal, "xa-phuong1", accounts["xa-phuong1"], "/hoat-dong/moi/legal_outreach")
    commune.fill("#occurred_on", "10/04/2021")
    commune.fill("#title", OUTREACH)
    commune.fill("#topic", "Phòng, chống bạo lực gia đình")
    commune.fill("#m-sessions", "1")
    commune.fill("#m-participants", "40")
    commune.fill("#m-female_participants", "30")
    commune.click("form.form button[type=submit]")
    commune.wait_for_url(re.compile(r"/hoat-dong/[0-9a-f-]{36}$"))
    detail_url = commune.url

    commune.click("text=Sửa thông tin hoạt động")
    commune.wait_for_url(re.compile(r"/sua$"))
    assert commune.input_value("#title") == OUTREACH  # the form starts from what is stored
    assert commune.input_value("#m-participants") == "40"
    accessible(commune, checked)
    commune.fill("#m-participants", "55")
    commune.fill("#m-female_participants", "60")  # more women than participants: refused
    commune.click("form.form button[type=submit]")
    assert commune.locator("#loi-metrics-female_participants").inner_text() != ""
    accessible(commune, checked)
    commune.fill("#m-female_participants", "41")
    commune.click("form.form button[type=submit]")
    commune.wait_for_url(detail_url)
    assert "Đã sửa hoạt động (lần sửa thứ 1)." in commune.locator(".flash").inner_text()
    facts = commune.locator("dl.facts").inner_text()
    assert re.search(r"Số người tham dự\s+55", facts) and "đã sửa 1 lần" in facts
    accessible(commune, checked)

    sign_in(district, portal, "huyen-tuyhoa", accounts["huyen-tuyhoa"])

    def recorded(expected: int) -> bool:
        rows = indicator_rows(download(district, "Bảng chỉ số (.xlsx)"))
        return rows["legal_outreach.participants"][0] == expected

    until(lambda: recorded(55), timeout=40)  # activity.corrected reached aggregation
    rows = indicator_rows(download(district, "Bảng chỉ số (.xlsx)"))
    assert rows["legal_outreach.female_participants"][0] == 41
    assert rows["legal_outreach.count"][0] == 1

    commune.fill("#reason", "Ghi nhận trùng với biên bản ngày 09/04/2021")
    commune.click("button:has-text('Hủy hoạt động này')")
    commune.wait_for_load_state()
    assert "Đã hủy hoạt động ngày 10/04/2021." in commune.locator(".flash").inner_text()
    assert "Đã hủy" in commune.locator(".page-head .badge").inner_text()
    assert commune.locator("button:has-text('Hủy hoạt động này')").count() == 0
    accessible(commune, checked)
    commune.goto(f"{portal}/hoat-dong?kind=legal_outreach")
    assert OUTREACH not in commune.locator("main").inner_text()
    commune.goto(f"{portal}/hoat-dong?kind=legal_outreach&include_voided=1")
    assert "Đã hủy" in commune.locator("tr", has_text=OUTREACH).inner_text()

    until(lambda: recorded(0), timeout=40)  # activity.voided reached aggregation
    assert indicator_rows(download(district, "Bảng chỉ số (.xlsx)"))["legal_outreach.count"][0] in (
        0,
        None,
    )


def test_the_compliance_workbook_and_the_thematic_report_hold_aggregations_figures(
    stack: dict[str, ServiceProcess], accounts: dict[str, str], new_page: Any
) -> None:
    portal = stack["portal"].url
    page = new_page()
    sign_in(page, portal, "huyen-tuyhoa", accounts["huyen-tuyhoa"])
    with httpx.Client(timeout=30) as http:
        tok = http.post(
            f"{stack['intake'].url}/api/v1/auth/token",
            data={"username": "huyen-tuyhoa", "password": accounts["huyen-tuyhoa"]},
        ).json()["access_token"]
        answer = http.get(
            f"{stack['aggregation'].url}/api/v1/compliance",
            params={"plan_id": "PY-2021-460", "unit_id": "555"},
            headers={"Authorization": f"Bearer {tok}"},
        )
        assert answer.status_code == 200, answer.text
    targets = {t["code"]: t for t in answer.json()["targets"]}
    assert targets["T2"]["in_scope"] == 17  # Tuy Hoà and its 16 wards and communes

    book = load_workbook(io.BytesIO(download(page, "Bảng tuân thủ (.xlsx)")))
    summary = list(book["Tổng hợp"].iter_rows(values_only=True))
    assert summary[0][:4] == ("Mã chỉ tiêu", "Chỉ tiêu", "Số đơn vị thuộc phạm vi", "Số đơn vị đạt")
    in_book = {r[0]: (r[2], r[3]) for r in summary[1:] if r[0]}
    assert in_book == {c: (t["in_scope"], t["met"]) for c, t in targets.items()}
    info = {r[0]: r[1] for r in book["Thông tin"].iter_rows(values_only=True)}
    assert info["Đơn vị"] == "Thành phố Tuy Hoà (mã 555)"

    report = Document(io.BytesIO(download(page, "Báo cáo chuyên đề (.docx)")))
    text = "\n".join(p.text for p in report.paragraphs)
    assert "I. KẾT QUẢ THỰC HIỆN CÁC CHỈ TIÊU" in text
    for t in targets.values():
        if t["in_scope"]:
            assert f"{t['met']}/{t['in_scope']} đơn vị đạt" in text, t["code"]
    table = next(tb for tb in report.tables if tb.rows[0].cells[1].text == "Chỉ tiêu")
    t2 = next(r for r in table.rows if r.cells[1].text.startswith("T2."))
    assert t2.cells[2].text == "17" and t2.cells[3].text == str(targets["T2"]["met"])

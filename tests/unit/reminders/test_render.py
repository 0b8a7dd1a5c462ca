from __future__ import annotations

import unicodedata
import uuid
from datetime import date, datetime

import pytest

from lhpn_shared.clock import LOCAL_TZ
from lhpn_shared.contracts.cases import CaseKind
from lhpn_shared.contracts.units import UnitLevel, UnitTree
from reminders.delivery.render import (
    RenderContext,
    build_environment,
    days_late,
    format_deadline,
    format_last_day,
    format_long_date,
    format_period,
    render_message,
    report_titles,
    union_name,
)
from reminders.domain.messages import CaseReminder, ParentDigest, ReportReminder
from reminders.domain.obligations import derive_obligations
from reminders.domain.policy import ReminderPolicy, due_reminders

PORTAL = "https://lhpn.example.vn/"
ENV = build_environment()


def vn(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=LOCAL_TZ)


def context(plan, units, as_of: datetime) -> RenderContext:
    return RenderContext(
        env=ENV, portal_url=PORTAL, units=units, report_titles=report_titles([plan]), as_of=as_of
    )


def thematic_reminder(unit_id: str, step: str) -> ReportReminder:
    return ReportReminder(
        step=step,
        recipient_unit_id=unit_id,
        step_at=vn(2021, 11, 2),
        due_at=vn(2021, 10, 30),
        obligation_id=f"PY-2021-460:thematic_annual:2021:{unit_id}",
        plan_id="PY-2021-460",
        report_type="thematic_annual",
        period="2021",
        unit_id=unit_id,
    )


@pytest.mark.parametrize(
    ("key", "label"),
    [
        ("2021-03", "tháng 3/2021"),
        ("2021-12", "tháng 12/2021"),
        ("2021-H1", "6 tháng đầu năm 2021"),
        ("2021-H2", "6 tháng cuối năm 2021"),
        ("2021-Q3", "quý III/2021"),
        ("2021", "năm 2021"),
        ("đợt-1", "đợt-1"),
    ],
)
def test_period_keys_read_the_vietnamese_way(key, label):
    assert format_period(key) == label


def test_dates_follow_administrative_usage_with_a_zero_before_small_days_and_months_1_and_2():
    assert format_long_date(date(2021, 10, 30)) == "ngày 30 tháng 10 năm 2021"
    assert format_long_date(date(2021, 1, 5)) == "ngày 05 tháng 01 năm 2021"
    assert format_long_date(date(2021, 3, 16)) == "ngày 16 tháng 3 năm 2021"


def test_a_deadline_reads_as_before_midnight_and_as_the_last_whole_day_in_vietnam_time():
    due_at = vn(2021, 10, 30).astimezone(datetime.now().astimezone().tzinfo)

    assert format_deadline(due_at) == "trước 00 giờ 00 ngày 30 tháng 10 năm 2021"
    assert format_last_day(due_at) == "29/10/2021"
    assert format_last_day(vn(2021, 10, 30, 17)) is None


def test_days_late_counts_whole_days_since_the_due_instant():
    due_at = vn(2021, 10, 30)

    assert days_late(due_at, vn(2021, 10, 29, 8)) == 0
    assert days_late(due_at, vn(2021, 10, 30, 8)) == 0
    assert days_late(due_at, vn(2021, 10, 31, 8)) == 1
    assert days_late(due_at, vn(2021, 11, 2, 8)) == 3


def test_a_union_is_named_with_its_kind_in_lower_case(phu_yen_units, make_unit):
    assert union_name(phu_yen_units, "560") == "Hội LHPN huyện Sơn Hòa"
    assert union_name(phu_yen_units, "555") == "Hội LHPN thành phố Tuy Hoà"
    assert union_name(phu_yen_units, "54") == "Hội LHPN tỉnh Phú Yên"
    odd = make_unit(name="Cụm dân cư A", kind="xã")
    assert union_name(UnitTree([odd]), odd.unit_id) == "Hội LHPN Cụm dân cư A"
    assert union_name(phu_yen_units, "99999") == "Hội LHPN đơn vị 99999"


def test_an_overdue_reminder_names_the_report_the_period_the_deadline_and_how_late(
    default_plan, phu_yen_units
):
    subject, body = render_message(
        thematic_reminder("563", "after_3d"),
        context(default_plan, phu_yen_units, vn(2021, 11, 2, 8)),
    )

    assert subject == (
        "[Hội LHPN] Quá hạn 3 ngày: Báo cáo hoạt động chuyên đề năm 2021 – kỳ năm 2021"
    )
    assert body.startswith("Kính gửi: Hội LHPN huyện Phú Hoà,\n")
    assert "Báo cáo hoạt động chuyên đề năm 2021, kỳ năm 2021" in body
    assert "trước 00 giờ 00 ngày 30 tháng 10 năm 2021 (hết ngày 29/10/2021)" in body
    assert "đã trễ 3 ngày" in body
    assert (
        "https://lhpn.example.vn/reports/new?unit_id=563&report_type=thematic_annual&period=2021"
        in body
    )
    assert unicodedata.is_normalized("NFC", subject + body)
    assert "{{" not in body and "{%" not in body


def test_the_reminder_on_the_last_day_says_today_is_the_last_day(default_plan, phu_yen_units):
    subject, body = render_message(
        thematic_reminder("561", "due_day"),
        context(default_plan, phu_yen_units, vn(2021, 10, 29, 8)),
    )

    assert subject.startswith("[Hội LHPN] Hôm nay là hạn chót: Báo cáo hoạt động chuyên đề")
    assert "Hôm nay là ngày cuối cùng để gửi" in body
    assert "hạn chót: hết ngày 29/10/2021" in body


def test_an_early_monthly_reminder_to_a_commune_gives_the_month_and_the_due_date(
    default_plan, phu_yen_units
):
    (obligation,) = (
        o
        for o in derive_obligations(default_plan, phu_yen_units)
        if o.unit_id == "22015" and o.report_type == "monthly" and o.period == "2021-03"
    )
    as_of = vn(2021, 3, 13, 8)
    (planned,) = due_reminders([obligation], ReminderPolicy(), as_of, set())

    subject, body = render_message(planned, context(default_plan, phu_yen_units, as_of))

    assert subject == ("[Hội LHPN] Nhắc gửi Báo cáo kết quả thực hiện hàng tháng – kỳ tháng 3/2021")
    assert "Kính gửi: Hội LHPN phường 1," in body
    assert "trước 00 giờ 00 ngày 16 tháng 3 năm 2021 (hạn chót: hết ngày 15/03/2021)" in body
    assert "trễ" not in body


def test_the_digest_lists_the_late_units_by_name(default_plan, phu_yen_units):
    digest = ParentDigest(
        step="parent_digest",
        recipient_unit_id="54",
        step_at=vn(2021, 11, 4),
        due_at=vn(2021, 10, 30),
        plan_id="PY-2021-460",
        report_type="thematic_annual",
        period="2021",
        late_unit_ids=("563", "564"),
        obligation_ids=("x:563", "x:564"),
    )

    subject, body = render_message(digest, context(default_plan, phu_yen_units, vn(2021, 11, 4, 8)))

    assert subject == (
        "[Hội LHPN] 2 đơn vị chưa gửi Báo cáo hoạt động chuyên đề năm 2021 – kỳ năm 2021"
    )
    assert "Kính gửi: Hội LHPN tỉnh Phú Yên," in body
    assert "Đến ngày 04/11/2021, 2 đơn vị trực thuộc chưa gửi" in body
    assert "1. Huyện Phú Hoà (mã 563)\n2. Thị xã Đông Hòa (mã 564)\n" in body
    assert "đã trễ 5 ngày" in body
    assert "Huyện Tây Hoà" not in body
    assert "/reporting-rates?unit_id=54&report_type=thematic_annual&period=2021" in body


def case_reminder(step: str, unit_id: str, recipient: str) -> CaseReminder:
    return CaseReminder(
        step=step,
        recipient_unit_id=recipient,
        step_at=vn(2021, 3, 9),
        due_at=vn(2021, 3, 11),
        case_id=uuid.uuid4(),
        case_kind=CaseKind.complaint,
        unit_id=unit_id,
        deadline="accept",
    )


def test_a_case_warning_names_the_kind_and_the_deadline(default_plan, phu_yen_units):
    planned = case_reminder("warning", "22015", "22015")

    subject, body = render_message(planned, context(default_plan, phu_yen_units, vn(2021, 3, 9, 8)))

    assert subject == "[Hội LHPN] Sắp đến hạn thụ lý: vụ việc khiếu nại"
    assert "Kính gửi: Hội LHPN phường 1," in body
    assert "Hạn thụ lý: trước 00 giờ 00 ngày 11 tháng 3 năm 2021." in body
    assert f"https://lhpn.example.vn/cases/{planned.case_id}" in body


def test_a_case_escalation_tells_the_parent_which_unit_is_late_and_by_how_much(
    default_plan, phu_yen_units
):
    planned = case_reminder("escalation", "22015", "555")

    subject, body = render_message(
        planned, context(default_plan, phu_yen_units, vn(2021, 3, 14, 8))
    )

    assert subject == "[Hội LHPN] Vụ việc của Hội LHPN phường 1 quá hạn thụ lý 3 ngày"
    assert body.startswith("Kính gửi: Hội LHPN thành phố Tuy Hoà,\n")
    assert "do Hội LHPN phường 1 tiếp nhận đã quá hạn thụ lý" in body
    assert "đã trễ 3 ngày" in body


def test_a_case_overdue_within_its_first_day_says_overdue_without_a_count(
    default_plan, phu_yen_units
):
    planned = case_reminder("overdue", "22015", "22015")

    subject, body = render_message(
        planned, context(default_plan, phu_yen_units, vn(2021, 3, 11, 8))
    )

    assert subject == "[Hội LHPN] Quá hạn thụ lý: vụ việc khiếu nại"
    assert "đã quá hạn." in body
    assert "trễ 0 ngày" not in body


def test_an_unknown_report_type_falls_back_to_its_code(make_unit):
    unit = make_unit(level=UnitLevel.district, kind="huyện", name="Huyện X")
    planned = thematic_reminder(unit.unit_id, "after_1d")
    ctx = RenderContext(
        env=ENV, portal_url=PORTAL, units=UnitTree([unit]), report_titles={}, as_of=vn(2021, 11, 1)
    )

    subject, _ = render_message(planned, ctx)

    assert subject == "[Hội LHPN] Quá hạn 2 ngày: thematic_annual – kỳ năm 2021"

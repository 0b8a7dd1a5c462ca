"""Vietnamese words and number formats shared by the exports."""

from __future__ import annotations

from datetime import date

from lhpn_shared.contracts.activities import KIND_LABELS_VI, METRICS, ActivityKind
from lhpn_shared.contracts.units import UnitLevel

LEVELS_VI: dict[UnitLevel, str] = {
    UnitLevel.national: "Trung ương",
    UnitLevel.province: "Cấp tỉnh",
    UnitLevel.district: "Cấp huyện",
    UnitLevel.commune: "Cấp xã",
}

METRICS_VI: dict[str, str] = {
    "recommendations": "Số kiến nghị",
    "recommendations_accepted": "Số kiến nghị được tiếp thu",
    "comments": "Số ý kiến góp ý",
    "comments_accepted": "Số ý kiến được tiếp thu",
    "participants": "Số người tham dự",
    "female_participants": "Số người tham dự là nữ",
    "issues_raised": "Số vấn đề nêu ra",
    "issues_answered": "Số vấn đề được trả lời",
    "representatives": "Số lượt cử đại diện",
    "issues": "Số vấn đề tổng hợp, phản ánh",
    "sessions": "Số buổi",
    "count": "Số điển hình",
}

ACTIVITIES_VI = "Số hoạt động"
MET_VI = "Đạt"
NOT_MET_VI = "Chưa đạt"


def kind_label(kind: ActivityKind | None) -> str:
    return KIND_LABELS_VI[kind] if kind is not None else "Khác"


def measure_label(kind: ActivityKind | None, measure: str) -> str:
    """`count` is the number of activities, unless the kind has a metric of that name."""
    if kind is not None and measure == "count" and "count" not in METRICS[kind]:
        return ACTIVITIES_VI
    return METRICS_VI.get(measure, measure)


def vi_number(value: int) -> str:
    """12345 → 12.345"""
    return f"{value:,}".replace(",", ".")


def vi_percent(value: float | None) -> str:
    """82.35 → 82,35%; 100.0 → 100%; None → –"""
    if value is None:
        return "–"
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return text.replace(".", ",") + "%"


def vi_day(day: date) -> str:
    """`ngày 05 tháng 3 năm 2021` (Nghị định 30/2020/NĐ-CP: a zero before days below 10 and
    months below 3)."""
    month = f"{day.month:02d}" if day.month < 3 else str(day.month)
    return f"ngày {day.day:02d} tháng {month} năm {day.year}"


def vi_short_date(day: date) -> str:
    """`05/03/2021`"""
    return day.strftime("%d/%m/%Y")

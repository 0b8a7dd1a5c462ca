"""How the pages write dates, instants, numbers and periods, the Vietnamese way: dd/mm/yyyy,
'.' between thousands and ',' before decimals, times in Asia/Ho_Chi_Minh. Pure functions (the
templates use them as filters); a value they cannot read is shown as it came, never an error."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta

from lhpn_shared.clock import LOCAL_TZ

DASH = "–"


def _as_date(value: date | datetime | str) -> date | None:
    if isinstance(value, datetime):
        return value.astimezone(LOCAL_TZ).date() if value.tzinfo else value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _as_instant(value: datetime | str) -> datetime | None:
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def vi_date(value: date | datetime | str | None) -> str:
    """2021-03-05 → 05/03/2021 (an instant: its day in Viet Nam)."""
    if value is None or value == "":
        return DASH
    day = _as_date(value)
    return day.strftime("%d/%m/%Y") if day else str(value)


def vi_datetime(value: datetime | str | None) -> str:
    """2021-03-05T02:30:00Z → 05/03/2021 09:30 (Asia/Ho_Chi_Minh)."""
    if value is None or value == "":
        return DASH
    at = _as_instant(value)
    if at is None or at.tzinfo is None:
        return str(value)
    return at.astimezone(LOCAL_TZ).strftime("%d/%m/%Y %H:%M")


def vi_deadline(value: datetime | str | None) -> str:
    """A due instant as staff read it: 'before 00:00 on the 16th' is 'hết ngày 15/01/2021'."""
    if value is None or value == "":
        return DASH
    at = _as_instant(value)
    if at is None or at.tzinfo is None:
        return str(value)
    local = at.astimezone(LOCAL_TZ)
    if local.time() == time(0, 0):
        return f"hết ngày {(local.date() - timedelta(days=1)).strftime('%d/%m/%Y')}"
    return f"trước {local.strftime('%H:%M')} ngày {local.strftime('%d/%m/%Y')}"


def vi_number(value: int | float | None, decimals: int = 0) -> str:
    """12345 → 12.345; 1234.5 (1 decimal) → 1.234,5; negative numbers keep their sign."""
    if value is None:
        return DASH
    text = f"{value:,.{decimals}f}"
    return text.replace(",", "\0").replace(".", ",").replace("\0", ".")


def vi_percent(value: float | None, decimals: int = 1) -> str:
    """82.35 → 82,4%; 100.0 → 100%; 0 → 0%; None (nothing expected) → –."""
    if value is None:
        return DASH
    text = vi_number(value, decimals)
    if "," in text:
        text = text.rstrip("0").rstrip(",")
    return f"{text}%"


_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_HALF = re.compile(r"^(\d{4})-H([12])$")
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")
_YEAR = re.compile(r"^(\d{4})$")


def vi_period(key: str | None) -> str:
    """Period keys (SPEC §3): 2021-03 → tháng 3/2021; 2021-H1 → 6 tháng đầu năm 2021;
    2021-Q3 → quý III/2021; 2021 → năm 2021."""
    if not key:
        return DASH
    if m := _MONTH.match(key):
        return f"tháng {int(m.group(2))}/{m.group(1)}"
    if m := _HALF.match(key):
        half = "6 tháng đầu năm" if m.group(2) == "1" else "6 tháng cuối năm"
        return f"{half} {m.group(1)}"
    if m := _QUARTER.match(key):
        return f"quý {('I', 'II', 'III', 'IV')[int(m.group(2)) - 1]}/{m.group(1)}"
    if m := _YEAR.match(key):
        return f"năm {m.group(1)}"
    return key


_VI_DAY = re.compile(r"^\s*(\d{1,2})\s*[/.-]\s*(\d{1,2})\s*[/.-]\s*(\d{4})\s*$")


def parse_vi_date(text: str) -> date | None:
    """What staff type: 05/03/2021, 5/3/2021, 5-3-2021 or 5.3.2021 (day first), or an ISO
    date; None when it is not a date."""
    text = text.strip()
    try:
        if m := _VI_DAY.match(text):
            return date(int(m.group(3)), int(m.group(2)), int(m.group(1)))
        return date.fromisoformat(text)
    except ValueError:
        return None


def capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]

"""Period keys (`2021`, `2021-H1`, `2021-Q3`, `2021-03`) and the calendar windows they name."""

from __future__ import annotations

import re
from calendar import monthrange
from datetime import date, datetime, time

from .clock import LOCAL_TZ

_YEAR = re.compile(r"^(\d{4})$")
_HALF = re.compile(r"^(\d{4})-H([12])$")
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class BadPeriod(ValueError):
    pass


def period_bounds(key: str) -> tuple[date, date]:
    """First and last day (inclusive) of a calendar period key."""
    if m := _YEAR.match(key):
        y = int(m[1])
        return date(y, 1, 1), date(y, 12, 31)
    if m := _HALF.match(key):
        y, h = int(m[1]), int(m[2])
        return (date(y, 1, 1), date(y, 6, 30)) if h == 1 else (date(y, 7, 1), date(y, 12, 31))
    if m := _QUARTER.match(key):
        y, q = int(m[1]), int(m[2])
        first = 3 * (q - 1) + 1
        return date(y, first, 1), date(y, first + 2, monthrange(y, first + 2)[1])
    if m := _MONTH.match(key):
        y, mo = int(m[1]), int(m[2])
        return date(y, mo, 1), date(y, mo, monthrange(y, mo)[1])
    raise BadPeriod(f"'{key}' is not a period (expected 2021, 2021-H1, 2021-Q3 or 2021-03)")


def half_years(year: int) -> list[tuple[str, date, date]]:
    return [(f"{year}-H{h}", *period_bounds(f"{year}-H{h}")) for h in (1, 2)]


def day_start(day: date) -> datetime:
    """00:00 of `day` in Asia/Ho_Chi_Minh, as an aware instant."""
    return datetime.combine(day, time(0, 0), tzinfo=LOCAL_TZ)


def ended_by(last_day: date, as_of: datetime) -> bool:
    """True when the local day `last_day` is over at the instant `as_of`."""
    return as_of >= day_start(date.fromordinal(last_day.toordinal() + 1))

"""Working days for the public sector: Monday–Friday, minus official days off, plus make-up days.

The Union's staff follow the schedule the government announces each year for cán bộ, công chức,
viên chức. That schedule is data (`cases/data/vn-holidays.json`), not a formula: Tết is decided
each year by the Prime Minister and weekends are sometimes swapped ("nghỉ hoán đổi", with a
Saturday worked instead — "làm bù").

Outside the years the data covers only weekends are skipped, so a deadline there can only come
*earlier* than the true one — never later; `covers()` lets the caller warn about it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

_SATURDAY = 5


@dataclass(frozen=True)
class HolidayCalendar:
    days_off: frozenset[date] = frozenset()
    working_days: frozenset[date] = field(default=frozenset())
    """Weekend days that are worked (làm bù) because a weekday was swapped off."""
    years: frozenset[int] = frozenset()
    """Years the data covers (listed in the data file)."""

    def covers(self, day: date) -> bool:
        return day.year in self.years

    def is_working_day(self, day: date) -> bool:
        if day in self.working_days:
            return True
        return day.weekday() < _SATURDAY and day not in self.days_off

    def add_working_days(self, start: date, count: int) -> date:
        """The `count`-th working day after `start` (the day of the event itself never counts)."""
        if count < 1:
            raise ValueError("count must be at least 1")
        day = start
        while count:
            day += timedelta(days=1)
            if self.is_working_day(day):
                count -= 1
        return day

    def next_working_day(self, day: date) -> date:
        """`day` itself when it is a working day, otherwise the first working day after it."""
        while not self.is_working_day(day):
            day += timedelta(days=1)
        return day

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> HolidayCalendar:
        """Parse the data file's shape: `{"years": {"2021": {"days_off": {date: name},
        "working_days": {date: name}}}}`; keys starting with `_` are notes."""
        days_off: set[date] = set()
        working: set[date] = set()
        years: set[int] = set()
        for year_key, entry in data["years"].items():
            year = int(year_key)
            years.add(year)
            for key in entry.get("days_off", {}):
                days_off.add(_day_in(year, key))
            for key in entry.get("working_days", {}):
                day = _day_in(year, key)
                if day.weekday() < _SATURDAY:
                    raise ValueError(f"make-up working day {key} is not a Saturday or Sunday")
                working.add(day)
        if clash := days_off & working:
            raise ValueError(f"listed both as day off and as working day: {sorted(clash)}")
        return cls(frozenset(days_off), frozenset(working), frozenset(years))


def _day_in(year: int, key: str) -> date:
    day = date.fromisoformat(key)
    if day.year != year:
        raise ValueError(f"{key} is listed under year {year}")
    return day

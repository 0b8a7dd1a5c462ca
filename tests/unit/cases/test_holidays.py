"""The official days off in `vn-holidays.json` and working-day counting."""

from __future__ import annotations

import json
from datetime import date
from importlib.resources import files

import pytest

from cases.data import load_vn_holidays
from cases.domain.holidays import HolidayCalendar

CALENDAR = load_vn_holidays()


def test_the_data_covers_2020_to_2027() -> None:
    assert CALENDAR.years == frozenset(range(2020, 2028))
    assert CALENDAR.covers(date(2027, 12, 31))
    assert not CALENDAR.covers(date(2028, 1, 1))


def test_the_data_file_says_where_its_dates_come_from() -> None:
    data = json.loads(files("cases.data").joinpath("vn-holidays.json").read_text("utf-8"))
    assert "_note" in data
    assert all("_note" in year for year in data["years"].values())


@pytest.mark.parametrize(
    ("day", "why"),
    [
        (date(2021, 1, 1), "New Year"),
        (date(2021, 2, 12), "Tết Tân Sửu, mùng 1"),
        (date(2021, 2, 16), "Tết Tân Sửu, last announced day"),
        (date(2021, 4, 21), "Giỗ Tổ Hùng Vương (10/3 lunar)"),
        (date(2021, 4, 30), "Reunification Day"),
        (date(2021, 5, 3), "compensatory day for Saturday 1/5"),
        (date(2021, 9, 3), "the day adjacent to 2/9, from 2021"),
        (date(2022, 1, 3), "compensatory day for Saturday 1/1"),
        (date(2023, 5, 2), "compensatory day for Giỗ Tổ on Saturday 29/4"),
        (date(2024, 4, 29), "swapped with Saturday 4/5"),
        (date(2025, 5, 2), "swapped with Saturday 26/4"),
        (date(2026, 2, 20), "Tết Bính Ngọ"),
    ],
)
def test_official_days_off_are_not_working_days(day: date, why: str) -> None:
    assert not CALENDAR.is_working_day(day), why


def test_2020_has_no_day_adjacent_to_national_day() -> None:
    assert CALENDAR.is_working_day(date(2020, 9, 3))  # Labour Code 2012: 2/9 only


def test_a_make_up_saturday_is_a_working_day() -> None:
    assert CALENDAR.is_working_day(date(2024, 5, 4))
    assert not CALENDAR.is_working_day(date(2024, 5, 11))


def test_a_make_up_saturday_counts_towards_ten_working_days() -> None:
    # From Thu 25/4/2024: Fri 26 (1); Mon 29 swapped off, 30/4 and 1/5 holidays;
    # Thu 2, Fri 3 (2-3); Sat 4/5 worked (4); 6-10 May (5-9); Mon 13 May (10).
    assert CALENDAR.add_working_days(date(2024, 4, 25), 10) == date(2024, 5, 13)


def test_the_day_of_the_event_never_counts() -> None:
    assert CALENDAR.add_working_days(date(2021, 3, 1), 1) == date(2021, 3, 2)


def test_a_make_up_day_on_a_weekday_is_refused() -> None:
    with pytest.raises(ValueError, match="not a Saturday or Sunday"):
        HolidayCalendar.from_mapping({"years": {"2024": {"working_days": {"2024-05-03": "x"}}}})


def test_a_date_filed_under_the_wrong_year_is_refused() -> None:
    with pytest.raises(ValueError, match="listed under year"):
        HolidayCalendar.from_mapping({"years": {"2024": {"days_off": {"2025-01-01": "x"}}}})

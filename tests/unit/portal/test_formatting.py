"""Dates, instants, numbers and periods as Vietnamese staff read them."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from portal.formatting import (
    parse_vi_date,
    vi_date,
    vi_datetime,
    vi_deadline,
    vi_number,
    vi_percent,
    vi_period,
)


def test_a_date_is_written_day_month_year_with_leading_zeros() -> None:
    assert vi_date(date(2021, 3, 5)) == "05/03/2021"
    assert vi_date("2021-12-31") == "31/12/2021"
    assert vi_date(None) == "–"


def test_an_instant_is_shown_in_viet_nam_time() -> None:
    assert vi_datetime("2021-03-05T02:30:00Z") == "05/03/2021 09:30"
    assert vi_datetime(datetime(2021, 12, 31, 17, 0, tzinfo=UTC)) == "01/01/2022 00:00"
    # the day of an instant is its day in Viet Nam, not in UTC
    assert vi_date(datetime(2021, 1, 15, 17, 0, tzinfo=UTC)) == "16/01/2021"


def test_a_midnight_due_instant_reads_as_the_end_of_the_day_before() -> None:
    assert vi_deadline("2021-01-15T17:00:00Z") == "hết ngày 15/01/2021"
    assert vi_deadline("2021-01-16T10:00:00+07:00") == "trước 10:00 ngày 16/01/2021"


def test_numbers_use_dots_between_thousands_and_a_comma_before_decimals() -> None:
    assert vi_number(12345) == "12.345"
    assert vi_number(1234567) == "1.234.567"
    assert vi_number(1234.5, 1) == "1.234,5"
    assert vi_number(0) == "0"
    assert vi_number(-2500) == "-2.500"


@pytest.mark.parametrize(
    ("value", "shown"),
    [(82.36, "82,4%"), (100.0, "100%"), (0.0, "0%"), (5.88, "5,9%"), (None, "–"), (50.04, "50%")],
)
def test_percentages_keep_one_decimal_with_a_comma(value: float | None, shown: str) -> None:
    assert vi_percent(value) == shown


def test_period_keys_read_as_words() -> None:
    assert vi_period("2021-03") == "tháng 3/2021"
    assert vi_period("2021-H1") == "6 tháng đầu năm 2021"
    assert vi_period("2021-H2") == "6 tháng cuối năm 2021"
    assert vi_period("2021-Q3") == "quý III/2021"
    assert vi_period("2021") == "năm 2021"
    assert vi_period("something-else") == "something-else"


@pytest.mark.parametrize(
    ("typed", "day"),
    [
        ("05/03/2021", date(2021, 3, 5)),
        ("5/3/2021", date(2021, 3, 5)),
        ("5-3-2021", date(2021, 3, 5)),
        (" 31.12.2021 ", date(2021, 12, 31)),
        ("2021-03-05", date(2021, 3, 5)),
        ("31/02/2021", None),
        ("03/05", None),
        ("hôm qua", None),
    ],
)
def test_typed_dates_are_read_day_first(typed: str, day: date | None) -> None:
    assert parse_vi_date(typed) == day

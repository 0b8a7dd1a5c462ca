"""What the dashboard asks for, from the plan and the time."""

from __future__ import annotations

from datetime import UTC, datetime

from portal.overview import (
    breadcrumbs,
    cases_overdue_first,
    latest_periods,
    overdue_first,
    plan_as_of,
)
from tests.unit.portal.fakes import PLAN


def test_a_past_plan_is_shown_as_of_the_end_of_its_year() -> None:
    as_of = plan_as_of(PLAN, datetime(2026, 12, 1, tzinfo=UTC))
    assert as_of.isoformat() == "2021-12-31T23:59:59+07:00"
    during = datetime(2021, 7, 1, 3, 0, tzinfo=UTC)
    assert plan_as_of(PLAN, during) == during


def test_the_latest_three_monthly_periods_whose_due_date_has_passed() -> None:
    chosen = latest_periods(PLAN, datetime(2021, 7, 20, tzinfo=UTC), "district")
    assert [p.period for p in chosen] == ["2021-07", "2021-06", "2021-05"]
    # before the first due date: the first period, so the page is never empty
    early = latest_periods(PLAN, datetime(2021, 1, 2, tzinfo=UTC), "commune")
    assert [p.period for p in early] == ["2021-01"]


def test_schedules_no_unit_of_the_subtree_reports_to_are_left_out() -> None:
    district_only = {
        **PLAN,
        "report_schedules": [{**PLAN["report_schedules"][0], "levels": ["district"]}],
    }
    assert latest_periods(district_only, datetime(2021, 7, 20, tzinfo=UTC), "commune") == []
    assert latest_periods(district_only, datetime(2021, 7, 20, tzinfo=UTC), "province")


def test_obligations_are_listed_overdue_first_then_open_then_fulfilled() -> None:
    items = [
        {"period": "a", "status": "fulfilled_on_time", "due_at": "2021-01-15T17:00:00Z"},
        {"period": "b", "status": "open", "due_at": "2021-12-15T17:00:00Z"},
        {"period": "c", "status": "overdue", "due_at": "2021-03-15T17:00:00Z"},
        {"period": "d", "status": "overdue", "due_at": "2021-02-15T17:00:00Z"},
        {"period": "e", "status": "fulfilled_late", "due_at": "2021-04-15T17:00:00Z"},
    ]
    assert [o["period"] for o in overdue_first(items)] == ["d", "c", "b", "e", "a"]


def test_cases_are_listed_overdue_first_then_by_next_due_date() -> None:
    items = [
        {"id": 1, "overdue": False, "next_due_at": None},
        {"id": 2, "overdue": False, "next_due_at": "2021-05-01T00:00:00Z"},
        {"id": 3, "overdue": True, "next_due_at": "2021-04-01T00:00:00Z"},
        {"id": 4, "overdue": False, "next_due_at": "2021-04-20T00:00:00Z"},
    ]
    assert [c["id"] for c in cases_overdue_first(items)] == [3, 4, 2, 1]


def test_the_drill_down_path_runs_from_the_users_unit_to_the_one_shown() -> None:
    units = {
        "54": {"parent_id": None},
        "555": {"parent_id": "54"},
        "22015": {"parent_id": "555"},
    }
    assert breadcrumbs(units, "22015", "54") == ["54", "555", "22015"]
    assert breadcrumbs(units, "22015", "555") == ["555", "22015"]
    assert breadcrumbs(units, "54", None) == ["54"]

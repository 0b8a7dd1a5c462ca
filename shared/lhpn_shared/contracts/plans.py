"""The plan (SPEC §3): targets and reporting calendar, all of it data."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, Field, model_validator

from ..clock import LOCAL_TZ
from .activities import ActivityKind
from .units import Unit, UnitLevel, UnitTree


def last_day_to_submit(due_at: datetime) -> date:
    """The last local day on which a report is still on time (due 30/10 00:00 → 29/10)."""
    return (due_at - timedelta(microseconds=1)).astimezone(LOCAL_TZ).date()


class TargetRule(StrEnum):
    any_in_year = "any_in_year"
    """Met by at least `min_count` matching activities within the plan year."""
    each_ended_half_year = "each_ended_half_year"
    """Met when every half-year of the plan year that has ended by the as-of date has
    at least `min_count` matching activities (no half-year ended yet: not met)."""


class Target(BaseModel):
    code: str = Field(min_length=1, max_length=16)
    title: str
    levels: list[UnitLevel] = Field(min_length=1)
    activity_kinds: list[ActivityKind] = Field(min_length=1)
    rule: TargetRule = TargetRule.any_in_year
    min_count: int = Field(default=1, ge=1)
    goal_percent: float = Field(default=100.0, ge=0, le=100)


class SchedulePeriod(BaseModel):
    period: str = Field(description="period key, e.g. 2021-03, 2021-H1, 2021")
    window_start_on: date
    window_end_on: date | None = Field(default=None, description="None: up to the report date")
    due_at: dict[UnitLevel, AwareDatetime] = Field(
        description="per reporting level, the instant before which a report is on time"
    )

    def reporting_day(self, level: UnitLevel | None = None) -> date:
        """The report date of this period: the last day a report of `level` is on time (of
        any level when None: the latest)."""
        dues = [self.due_at[level]] if level is not None else list(self.due_at.values())
        return max(last_day_to_submit(d) for d in dues)

    def data_window(self, level: UnitLevel | None = None) -> tuple[date, date]:
        """First and last day of the data a report covers. An open-ended window ("2021-01-01 –
        report date", SPEC §3) ends on the report date (`reporting_day`). The one definition
        intake, reminders and aggregation use."""
        end = self.window_end_on if self.window_end_on is not None else self.reporting_day(level)
        return self.window_start_on, end


class ReportSchedule(BaseModel):
    report_type: str = Field(min_length=1, max_length=64)
    title: str
    levels: list[UnitLevel] = Field(min_length=1, description="levels that report")
    indicators: list[str] = Field(
        default_factory=list,
        description="indicator codes a report may declare: '<activity kind>.<metric>' or "
        "'<activity kind>.count'",
    )
    periods: list[SchedulePeriod] = Field(min_length=1)

    @model_validator(mode="after")
    def _due_for_every_level(self) -> ReportSchedule:
        for p in self.periods:
            missing = set(self.levels) - set(p.due_at)
            if missing:
                raise ValueError(f"period {p.period} has no due instant for {sorted(missing)}")
        return self

    def period(self, key: str) -> SchedulePeriod | None:
        return next((p for p in self.periods if p.period == key), None)

    def expects(self, unit: Unit, period: SchedulePeriod) -> bool:
        """Whether `unit` owes a report for `period`: its level reports under this schedule and
        it exists on the report date. A unit gone by then is not expected (what it sent stays
        its own); the unit that continues it by then is."""
        return unit.level in self.levels and unit.valid_on(period.reporting_day(unit.level))


class Plan(BaseModel):
    plan_id: str = Field(min_length=1, max_length=64)
    year: int = Field(ge=2000, le=2100)
    number: str
    issuing_unit_id: str
    title: str
    issued_on: date | None = None
    targets: list[Target] = Field(default_factory=list)
    report_schedules: list[ReportSchedule] = Field(default_factory=list)
    revision: int = Field(default=1, ge=1)
    published_at: datetime | None = None

    def schedule(self, report_type: str) -> ReportSchedule | None:
        return next((s for s in self.report_schedules if s.report_type == report_type), None)

    def covers(self, unit_id: str, tree: UnitTree) -> bool:
        """Whether the plan applies to a unit: one within the issuing unit, or within a unit
        the issuing unit continues (a 2025 plan of the new Đắk Lắk also covers the former Phú
        Yên's units for the months before they merged). Another province's units are not."""
        roots = [self.issuing_unit_id, *tree.predecessors(self.issuing_unit_id)]
        return any(tree.is_within(unit_id, root) for root in roots)

    def year_bounds(self) -> tuple[date, date]:
        return date(self.year, 1, 1), date(self.year, 12, 31)

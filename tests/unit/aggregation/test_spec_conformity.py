"""Aggregation's points of issue 10's SPEC conformity, each with values taken from the SPEC's
text (quoted beside them), over the default data (Phú Yên 2021, plan 460/KH-BTV)."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta

from lhpn_shared.clock import LOCAL_TZ, FixedClock
from lhpn_shared.contracts.cases import CaseFacts, CaseStatus, CaseStatusChange
from lhpn_shared.contracts.events import Envelope, make_event
from lhpn_shared.contracts.reports import Report
from tests.unit.aggregation.generated import Generated, load_plan, load_units, setup_events
from tests.unit.aggregation.memory import consume

COMMUNE, DISTRICT = "22015", "555"  # Phường 1, Thành phố Tuy Hoà
AT = datetime(2021, 1, 1, tzinfo=LOCAL_TZ)


def default_data() -> list[Envelope]:
    return setup_events(Generated(units=load_units(), plan=load_plan()))


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=LOCAL_TZ)


# SPEC §6: "complaint — accept within 10 days of receipt … A case shows its next due instant and
# whether it is overdue." §3: "every deadline is an instant in Asia/Ho_Chi_Minh time".
RECEIVED_ON = date(2021, 3, 2)
ACCEPT_DAYS = 10


def complaint(**overrides: object) -> CaseFacts:
    last_day = RECEIVED_ON + timedelta(days=ACCEPT_DAYS)  # 12 March: the tenth day after receipt
    fields: dict[str, object] = {
        "case_id": uuid.uuid4(),
        "unit_id": COMMUNE,
        "kind": "complaint",
        "topic": "land",
        "channel": "walk_in",
        "status": "received",
        "received_on": RECEIVED_ON,
        "next_due_at": local(last_day.year, last_day.month, last_day.day + 1),  # 13 March 00:00
        "overdue": False,  # the event was published on the day of receipt
    }
    fields.update(overrides)
    return CaseFacts(**fields)  # type: ignore[arg-type]


async def overdue_at(now: datetime, *events: Envelope) -> int:
    svc = await consume([*default_data(), *events], clock=FixedClock(now))
    stats = await svc.case_stats(DISTRICT, "2021-03")
    child = next(c for c in stats.children if c.unit_id == COMMUNE)
    assert child.overdue == stats.overdue
    return stats.overdue


async def test_a_complaint_not_accepted_within_ten_days_is_overdue_from_then_without_a_new_event():
    opened = make_event("case.opened", complaint(), source="cases", occurred_at=local(2021, 3, 2))
    assert await overdue_at(local(2021, 3, 12, 23, 59), opened) == 0  # the tenth day: in time
    assert await overdue_at(local(2021, 3, 13, 0, 0), opened) == 1  # then late, no event needed
    first = complaint()
    accepted = CaseStatusChange(
        **first.model_dump(exclude={"status", "revision", "next_due_at", "overdue"}),
        status="accepted",
        revision=2,
        next_due_at=local(2021, 4, 11),  # resolve within 30 days of acceptance (10 March)
        from_status="received",
        changed_at=local(2021, 3, 10, 9),
    )
    events = [
        make_event("case.opened", first, source="cases", occurred_at=local(2021, 3, 2)),
        make_event("case.status_changed", accepted, source="cases", occurred_at=local(2021, 3, 10)),
    ]
    assert await overdue_at(local(2021, 3, 20), *events) == 0  # accepted in time
    assert await overdue_at(local(2021, 4, 11), *events) == 1  # not resolved in 30 days
    closed = accepted.model_copy(
        update={"status": CaseStatus.resolved, "revision": 3, "next_due_at": None}
    )
    resolved = make_event(
        "case.status_changed", closed, source="cases", occurred_at=local(2021, 4, 1)
    )
    assert await overdue_at(local(2021, 12, 1), *events, resolved) == 0  # nothing pending


# SPEC §3, report schedules: "`monthly` … period keys `2021-01` … `2021-12`", "communes before the
# 16th 00:00"; §8: "Indicators: totals … per unit subtree and period (month, quarter, half-year,
# year), and the totals that reports declared for the same period side by side".


def monthly_report(month: int, count: int) -> Envelope:
    due = local(2021, month, 16)
    report = Report(
        report_id=uuid.uuid4(),
        unit_id=COMMUNE,
        report_type="monthly",
        period=f"2021-{month:02d}",
        indicators={"supervision.count": count, "legal_outreach.participants": 10 * count},
        received_at=due - timedelta(days=1),
        due_at=due,
        on_time=True,
    )
    return make_event("report.submitted", report, source="intake", occurred_at=AT)


def thematic_report() -> Envelope:
    due = local(2021, 10, 30)  # "trước ngày 30/10/2021"
    report = Report(
        report_id=uuid.uuid4(),
        unit_id=DISTRICT,
        report_type="thematic_annual",
        period="2021",
        indicators={"supervision.count": 40},
        received_at=due - timedelta(days=3),
        due_at=due,
        on_time=True,
    )
    return make_event("report.submitted", report, source="intake", occurred_at=AT)


async def test_monthly_declared_totals_add_up_into_the_quarter_the_half_year_and_the_year():
    reports = [monthly_report(month, count=month) for month in range(1, 13)]  # 1, 2, … 12
    svc = await consume([*default_data(), *reports, thematic_report()])

    async def declared(period: str, report_type: str | None = None) -> tuple[int | None, int]:
        result = await svc.indicators(DISTRICT, period, report_type)
        row = next(r for r in result.rows if r.code == "supervision.count")
        return row.declared, result.reports

    assert await declared("2021-03") == (3, 1)
    assert await declared("2021-Q1") == (1 + 2 + 3, 3)
    assert await declared("2021-Q4") == (10 + 11 + 12, 3)
    assert await declared("2021-H1") == (21, 6)
    assert await declared("2021-H2") == (57, 6)
    assert await declared("2021") == (78, 12)  # the twelve monthly reports, not the annual one
    assert await declared("2021", "thematic_annual") == (40, 1)  # the annual report on its own
    participants = next(
        r
        for r in (await svc.indicators(DISTRICT, "2021")).rows
        if r.code == "legal_outreach.participants"
    )
    assert participants.declared == 780

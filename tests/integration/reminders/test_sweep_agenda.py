"""Sweeps that know from the agenda that nothing is due read no obligation nor case — and
every write of a step (a plan, a case, a policy change) makes the next sweep look again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from lhpn_shared.contracts.units import UnitLevel
from reminders.agenda import RESCAN_AFTER
from reminders.domain.progress import next_case_step_at
from reminders.sweep import Sweeper, SweepResult

from .conftest import (
    DISTRICTS,
    PROVINCE,
    THEMATIC,
    Service,
    SmtpSink,
    email_of,
    pairs,
    plan_event,
    thematic_plan,
)
from .test_case_deadlines import _until_case_revision, make_case, opened
from .test_reminder_policy import put_policy, read_policy

MINUTE = timedelta(minutes=1)


async def run(service: Service, as_of: datetime) -> SweepResult:
    """One sweep and its deliveries, as the scheduler runs it."""
    service.clock.set(as_of)
    sweeper: Sweeper = service.app.state.sweeper
    return await sweeper.run(as_of)


async def first_step(service: Service) -> datetime:
    """The earliest `next_step_at` of the thematic obligations (before_3d: 27/10 00:00)."""
    items = await service.obligations(report_type=THEMATIC, unit_id=PROVINCE)
    return min(datetime.fromisoformat(o["next_step_at"]) for o in items)


async def test_a_sweep_reads_no_subject_until_the_first_step_left_comes(
    province: Service, smtp: SmtpSink
) -> None:
    step = await first_step(province)

    looked = await run(province, step - 40 * MINUTE)
    quiet = await run(province, step - 20 * MINUTE)
    due = await run(province, step + 5 * MINUTE)
    again = await run(province, step + 10 * MINUTE)

    assert (looked.looked, looked.obligations_examined, looked.claimed) == (True, 0, [])
    assert (quiet.looked, quiet.obligations_examined, quiet.claimed) == (False, 0, [])
    assert due.looked
    assert due.obligations_examined == 9
    assert pairs(smtp.take()) == {(email_of(d), "before_3d") for d in DISTRICTS}
    assert (again.looked, again.claimed) == (False, [])
    assert smtp.take() == []


async def test_a_sweep_looks_again_at_least_once_an_hour_whatever_the_agenda_says(
    province: Service,
) -> None:
    step = await first_step(province)
    start = step - 3 * RESCAN_AFTER

    first = await run(province, start)
    within = await run(province, start + RESCAN_AFTER - MINUTE)
    after = await run(province, start + RESCAN_AFTER)

    assert (first.looked, within.looked, after.looked) == (True, False, True)


async def test_a_plan_published_after_a_sweep_is_reminded_by_the_next_sweep(
    districts: Service, smtp: SmtpSink
) -> None:
    plan = thematic_plan()
    schedule = plan.schedule(THEMATIC)
    slot = schedule.period("2021") if schedule is not None else None
    assert slot is not None
    offsets = [r.offset for r in districts.settings.reminder_policy.steps_for(THEMATIC)]
    step = slot.due_at[UnitLevel.district] + min(offsets)  # before_3d of every district
    looked = await run(districts, step - 30 * MINUTE)
    quiet = await run(districts, step - 20 * MINUTE)  # no obligation yet
    await districts.publish(plan_event(plan))
    await districts.wait_obligations(9, report_type=THEMATIC, unit_id=PROVINCE)

    due = await run(districts, step + MINUTE)

    assert (looked.looked, quiet.looked) == (True, False)
    assert due.looked
    assert pairs(smtp.take()) == {(email_of(d), "before_3d") for d in DISTRICTS}


async def test_a_case_opened_after_a_sweep_is_reminded_by_the_next_sweep(
    districts: Service, smtp: SmtpSink
) -> None:
    case = make_case()  # its accept deadline's first step: a warning to district 562
    warning = next_case_step_at(case, districts.settings.case_reminder_policy, None)
    assert warning is not None
    looked = await run(districts, warning - 30 * MINUTE)
    quiet = await run(districts, warning - 20 * MINUTE)  # no step anywhere yet
    await districts.publish(opened(case))
    await _until_case_revision(districts, str(case.case_id), 1)

    due = await run(districts, warning + MINUTE)

    assert (looked.looked, quiet.looked) == (True, False)
    assert due.looked
    assert due.cases_examined == 1
    assert pairs(smtp.take()) == {(email_of("562"), "warning")}


async def test_a_policy_change_after_a_sweep_is_applied_and_sent_by_the_next_sweep(
    province: Service, smtp: SmtpSink
) -> None:
    step = await first_step(province)  # before_3d of every district
    assert (await run(province, step - 40 * MINUTE)).looked
    assert not (await run(province, step - 35 * MINUTE)).looked
    policy = (await read_policy(province)).json()
    earlier: dict[str, Any] = {**policy["reports"]}
    earlier["by_report_type"] = {THEMATIC: [{"step": "before_3d30m", "offset": "-P3DT30M"}]}
    body = {"revision": policy["revision"], "reports": earlier, "cases": policy["cases"]}
    assert (await put_policy(province, body)).status_code == 200

    due = await run(province, step - 20 * MINUTE)

    assert due.looked
    assert due.replanned == 9
    assert pairs(smtp.take()) == {(email_of(d), "before_3d30m") for d in DISTRICTS}


async def test_a_sweep_that_looked_while_a_step_was_written_records_nothing(
    service: Service,
) -> None:
    agenda = service.app.state.reminders.agenda
    as_of = datetime(2021, 10, 20, 8, tzinfo=UTC)

    read = await agenda.start()  # a sweep starts looking
    async with agenda.scheduling([as_of + MINUTE]):  # a case or plan writes a step meanwhile
        pass
    recorded = await agenda.record(read, None, as_of)  # the sweep saw no step at all

    assert not recorded
    assert not (await agenda.read()).nothing_due(as_of + 2 * MINUTE)
    again = await agenda.start()
    assert await agenda.record(again, as_of + MINUTE, as_of)
    assert (await agenda.read()).nothing_due(as_of + MINUTE - timedelta(milliseconds=1))
    assert not (await agenda.read()).nothing_due(as_of + MINUTE)

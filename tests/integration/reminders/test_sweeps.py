"""Sweeps against the real broker, DevMongo and SMTP server: what arrives, to whom, once."""

from __future__ import annotations

import asyncio

from lhpn_shared.auth import Role
from lhpn_shared.clock import FixedClock
from reminders.settings import RemindersSettings
from tests.support.amqp import EventListener
from tests.support.http import eventually, metric
from tests.support.infra import RabbitVhost

from .conftest import (
    DISTRICTS,
    PROVINCE,
    THEMATIC,
    Service,
    SmtpSink,
    email_of,
    pairs,
    plan_event,
    publish_districts,
    report_event,
    started,
    thematic_plan,
    vn,
)

# The thematic annual report 2021 (due before 30/10/2021 00:00): six districts on time, one
# late, two never.
RECEIVED_AT = {
    "555": vn(2021, 10, 28, 10),
    "557": vn(2021, 10, 28, 10),
    "558": vn(2021, 10, 28, 10),
    "559": vn(2021, 10, 28, 10),
    "560": vn(2021, 10, 28, 10),
    "561": vn(2021, 10, 29, 20),  # on time, after the due-day reminder
    "562": vn(2021, 11, 3, 9),  # late
}
OWING_ON_29_10 = ("561", "562", "563", "564")
LATE = ("562", "563", "564")


async def test_the_thematic_report_reminds_the_districts_that_owe_it_and_the_province_once(
    province: Service, smtp: SmtpSink
) -> None:
    expected = {
        vn(2021, 10, 27, 8): {(email_of(d), "before_3d") for d in DISTRICTS},
        vn(2021, 10, 29, 8): {(email_of(d), "due_day") for d in OWING_ON_29_10},
        vn(2021, 10, 31, 8): {(email_of(d), "after_1d") for d in LATE},
        vn(2021, 11, 2, 8): {(email_of(d), "after_3d") for d in LATE},
        vn(2021, 11, 4, 8): {(email_of(PROVINCE), "parent_digest")},
        vn(2021, 11, 5, 8): set(),
    }
    reported: set[str] = set()
    digest = None
    for as_of, sent in expected.items():
        arrived = [u for u, at in RECEIVED_AT.items() if at <= as_of and u not in reported]
        await province.publish(*(report_event(u, RECEIVED_AT[u]) for u in arrived))
        await province.wait_fulfilled(*arrived)
        reported.update(arrived)

        result = await province.sweep(as_of)

        mails = smtp.take()
        assert pairs(mails) == sent, as_of
        assert len(mails) == len(sent), as_of
        assert {(email_of(n["unit_id"]), n["step"]) for n in result["notifications"]} == sent
        assert {n["status"] for n in result["notifications"]} <= {"sent"}
        digest = next((m for m in mails if m.step == "parent_digest"), digest)

    assert digest is not None
    assert digest.subject.startswith("[Hội LHPN] 2 đơn vị chưa gửi")
    assert "Huyện Phú Hoà (mã 563)" in digest.body
    assert "Thị xã Đông Hòa (mã 564)" in digest.body
    assert "562" not in digest.body


async def test_the_same_sweep_twice_sends_nothing_the_second_time(
    province: Service, smtp: SmtpSink
) -> None:
    first = await province.sweep(vn(2021, 11, 4, 8))
    second = await province.sweep(vn(2021, 11, 4, 8))

    mails = smtp.take()
    assert len(first["notifications"]) == 9 * 4 + 1  # four steps caught up, one digest
    assert second["notifications"] == []
    assert len(mails) == 9 * 4 + 1
    assert len(pairs(mails)) == len(mails)


async def test_two_sweeps_at_once_send_every_reminder_exactly_once(
    province: Service, smtp: SmtpSink
) -> None:
    first, second = await asyncio.gather(
        province.sweep(vn(2021, 11, 4, 8)), province.sweep(vn(2021, 11, 4, 8))
    )

    ids = [n["notification_id"] for n in first["notifications"] + second["notifications"]]
    mails = smtp.take()
    assert len(ids) == len(set(ids)) == 9 * 4 + 1
    assert len(mails) == 9 * 4 + 1
    assert pairs(mails) == {
        (email_of(d), step)
        for d in DISTRICTS
        for step in ("before_3d", "due_day", "after_1d", "after_3d")
    } | {(email_of(PROVINCE), "parent_digest")}
    # How the two interleave is the scheduler's: the second may plan every send and find each
    # claimed, or start after the first has moved the obligations on and plan none. Either
    # way, a send planned by both is claimed by one and counted as already claimed by the other
    both = (first, second)
    planned_twice = sum(r["planned"] for r in both) - (9 * 4 + 1)
    assert sum(r["already_claimed"] for r in both) == planned_twice


async def test_a_report_arriving_after_reminders_started_stops_further_reminders_for_it(
    province: Service, smtp: SmtpSink
) -> None:
    await province.sweep(vn(2021, 10, 31, 8))
    assert ("hoi-562@lhpn.example.vn", "after_1d") in pairs(smtp.take())

    await province.publish(report_event("562", vn(2021, 11, 1, 9)))
    await province.wait_fulfilled("562")
    await province.sweep(vn(2021, 11, 2, 8))
    await province.sweep(vn(2021, 11, 4, 8))

    mails = smtp.take()
    others = [d for d in DISTRICTS if d != "562"]
    assert pairs(mails) == {(email_of(d), "after_3d") for d in others} | {
        (email_of(PROVINCE), "parent_digest")
    }
    digest = next(m for m in mails if m.step == "parent_digest")
    assert "562" not in digest.body
    assert digest.subject.startswith("[Hội LHPN] 8 đơn vị chưa gửi")
    (obligation,) = await province.obligations(report_type=THEMATIC, unit_id="562")
    assert obligation["status"] == "fulfilled_late"
    assert obligation["next_step_at"] is None


async def test_a_sweep_publishes_obligation_overdue_once_when_it_first_finds_it_overdue(
    province: Service,
) -> None:
    await province.publish(report_event("555", vn(2021, 10, 28, 10)))
    await province.wait_fulfilled("555")
    async with EventListener(province.rabbit.url, keys=("obligation.overdue.v1",)) as events:
        await province.sweep(vn(2021, 10, 29, 8))  # not due yet
        first = await province.sweep(vn(2021, 10, 30, 8))
        await province.sweep(vn(2021, 10, 31, 8))
        await province.sweep(vn(2021, 11, 5, 8))
        await province.outbox_published()  # every sweep wrote its events before answering
        await events.flush()

    overdue = events.bodies()
    assert first["newly_overdue"] == 8
    assert sorted(e["data"]["unit_id"] for e in overdue) == [d for d in DISTRICTS if d != "555"]
    assert {e["data"]["status"] for e in overdue} == {"overdue"}
    listed = await province.obligations(report_type=THEMATIC, unit_id=PROVINCE, status="overdue")
    assert len(listed) == 8


async def test_only_an_admin_may_run_a_sweep(province: Service) -> None:
    r = await province.client.post(
        "/api/v1/sweeps",
        json={"as_of": vn(2021, 10, 27, 8).isoformat()},
        headers=province.token(Role.province_staff, PROVINCE),
    )

    assert r.status_code == 403


async def test_the_scheduler_sweeps_on_its_own_as_of_the_injected_clock(
    settings: RemindersSettings, clock: FixedClock, smtp: SmtpSink, rabbit: RabbitVhost
) -> None:
    clock.set(vn(2021, 10, 27, 8))
    every_200ms = settings.model_copy(update={"sweep_interval_seconds": 0.2})
    async with started(every_200ms, clock, rabbit) as service:
        await publish_districts(service)
        await service.publish(plan_event(thematic_plan()))

        async def arrived(count: int) -> bool:
            return len(smtp.received) >= count

        async def five_more_sweeps() -> None:
            """Five more sweeps at the same instant ran to their end (each sends before it
            ends): anything they would send twice has arrived by then."""
            name = "lhpn_scheduled_sweeps_total"
            start = await metric(service.client, name)

            async def ran() -> bool:
                return await metric(service.client, name) >= start + 5

            await eventually(ran, timeout=30)

        await eventually(lambda: arrived(9), timeout=20)
        await five_more_sweeps()
        assert pairs(smtp.take()) == {(email_of(d), "before_3d") for d in DISTRICTS}
        assert len(smtp.received) == 0

        clock.set(vn(2021, 10, 29, 8))
        await eventually(lambda: arrived(9), timeout=20)
        await five_more_sweeps()
        assert pairs(smtp.take()) == {(email_of(d), "due_day") for d in DISTRICTS}

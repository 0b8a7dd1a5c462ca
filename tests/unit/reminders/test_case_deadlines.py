from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Any

from lhpn_shared.clock import LOCAL_TZ
from lhpn_shared.contracts.cases import (
    CaseChannel,
    CaseDeadline,
    CaseFacts,
    CaseKind,
    CaseStatus,
    CaseTopic,
)
from lhpn_shared.contracts.units import UnitLevel, UnitTree
from reminders.domain.case_deadlines import CaseReminderPolicy, due_case_reminders
from reminders.domain.policy import Audience, ReminderStep


def vn(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=LOCAL_TZ)


def make_case(unit_id: str, **overrides: Any) -> CaseFacts:
    fields: dict[str, Any] = {
        "case_id": uuid.uuid4(),
        "unit_id": unit_id,
        "kind": CaseKind.complaint,
        "topic": CaseTopic.land,
        "channel": CaseChannel.walk_in,
        "status": CaseStatus.received,
        "received_on": date(2021, 3, 1),
        "deadlines": [CaseDeadline(name="accept", due_at=vn(2021, 3, 11))],
    }
    fields.update(overrides)
    return CaseFacts(**fields)


def commune_in_district(make_unit) -> tuple[UnitTree, str, str]:
    district = make_unit(level=UnitLevel.district, kind="huyện", name="Huyện Tuy An")
    commune = make_unit(parent_id=district.unit_id)
    return UnitTree([district, commune]), commune.unit_id, district.unit_id


def pairs(messages) -> set[tuple[str, str]]:
    return {(m.step, m.recipient_unit_id) for m in messages}


def test_a_deadline_gets_a_warning_then_overdue_then_an_escalation_to_the_parent(make_unit):
    units, commune, district = commune_in_district(make_unit)
    case = make_case(commune)
    log: set[tuple[str, str, str]] = set()
    expected = {
        vn(2021, 3, 8, 8): set(),
        vn(2021, 3, 9, 8): {("warning", commune)},
        vn(2021, 3, 11, 0): {("overdue", commune)},
        vn(2021, 3, 13, 23): set(),
        vn(2021, 3, 14, 8): {("escalation", district)},
        vn(2021, 3, 20, 8): set(),
    }

    for as_of, steps in expected.items():
        messages = due_case_reminders([case], units, CaseReminderPolicy(), as_of, log)
        assert pairs(messages) == steps, as_of
        log |= {m.send_key for m in messages}


def test_case_reminders_carry_the_case_facts_and_a_key_per_deadline_and_due_instant(make_unit):
    units, commune, _ = commune_in_district(make_unit)
    case = make_case(commune)

    (m,) = due_case_reminders([case], units, CaseReminderPolicy(), vn(2021, 3, 9, 8), set())

    assert (m.case_id, m.case_kind, m.unit_id, m.deadline) == (
        case.case_id,
        CaseKind.complaint,
        commune,
        "accept",
    )
    assert (m.due_at, m.step_at) == (vn(2021, 3, 11), vn(2021, 3, 9))
    assert m.send_key == (
        f"case:{case.case_id}:accept:2021-03-10T17:00:00+00:00",
        "warning",
        commune,
    )


def test_a_closed_case_gets_nothing(make_unit):
    units, commune, _ = commune_in_district(make_unit)
    case = make_case(commune, status=CaseStatus.closed)

    assert due_case_reminders([case], units, CaseReminderPolicy(), vn(2021, 4, 1), set()) == []


def test_a_deadline_the_case_has_moved_past_is_no_longer_listed_and_gets_nothing(make_unit):
    units, commune, _ = commune_in_district(make_unit)
    accepted = make_case(
        commune,
        status=CaseStatus.accepted,
        deadlines=[CaseDeadline(name="resolve", due_at=vn(2021, 4, 9))],
    )

    messages = due_case_reminders([accepted], units, CaseReminderPolicy(), vn(2021, 3, 20), set())

    assert messages == []


def test_a_changed_due_instant_gets_its_own_reminders(make_unit):
    units, commune, _ = commune_in_district(make_unit)
    case = make_case(commune, deadlines=[CaseDeadline(name="resolve", due_at=vn(2021, 4, 9))])
    as_of = vn(2021, 4, 9, 8)
    log = {
        m.send_key for m in due_case_reminders([case], units, CaseReminderPolicy(), as_of, set())
    }
    extended = case.model_copy(
        update={"deadlines": [CaseDeadline(name="resolve", due_at=vn(2021, 5, 9))]}
    )

    assert due_case_reminders([case], units, CaseReminderPolicy(), as_of, log) == []
    assert due_case_reminders([extended], units, CaseReminderPolicy(), as_of, log) == []
    messages = due_case_reminders([extended], units, CaseReminderPolicy(), vn(2021, 5, 7), log)
    assert pairs(messages) == {("warning", commune)}


def test_a_case_of_a_unit_without_a_parent_is_not_escalated(make_unit):
    province = make_unit(level=UnitLevel.province, kind="tỉnh", name="Tỉnh Phú Yên")
    case = make_case(province.unit_id)

    messages = due_case_reminders(
        [case], UnitTree([province]), CaseReminderPolicy(), vn(2021, 4, 1), set()
    )

    assert pairs(messages) == {("warning", province.unit_id), ("overdue", province.unit_id)}


def test_the_case_steps_are_configurable(make_unit):
    units, commune, district = commune_in_district(make_unit)
    policy = CaseReminderPolicy(
        steps=(
            ReminderStep(step="warning_5d", offset=timedelta(days=-5)),
            ReminderStep(step="escalation", offset=timedelta(days=1), audience=Audience.parent),
        )
    )

    messages = due_case_reminders([make_case(commune)], units, policy, vn(2021, 3, 12), set())

    assert pairs(messages) == {("warning_5d", commune), ("escalation", district)}

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta

from lhpn_shared.contracts.cases import (
    CaseChannel,
    CaseDeadline,
    CaseFacts,
    CaseKind,
    CaseStatus,
    CaseTopic,
)
from lhpn_shared.contracts.units import Unit, UnitLevel, UnitTree
from reminders.domain.case_deadlines import CaseReminderPolicy, due_case_reminders
from reminders.domain.messages import SendKey
from reminders.domain.obligations import derive_obligations, fulfil
from reminders.domain.policy import ReminderPolicy, due_reminders
from reminders.domain.progress import (
    handled_case_keys,
    handled_obligation_keys,
    next_case_step_at,
    next_obligation_step_at,
)

from .conftest import vn

POLICY = ReminderPolicy()


def test_a_new_obligation_is_first_due_for_a_sweep_at_its_earliest_step(make_obligation):
    ob = make_obligation(due_at=vn(2021, 3, 16))

    assert next_obligation_step_at(ob, POLICY, None) == vn(2021, 3, 13)


def test_after_a_sweep_the_next_instant_is_the_first_step_or_due_instant_after_it(make_obligation):
    ob = make_obligation(due_at=vn(2021, 3, 16))

    assert next_obligation_step_at(ob, POLICY, vn(2021, 3, 13, 8)) == vn(2021, 3, 15)
    assert next_obligation_step_at(ob, POLICY, vn(2021, 3, 15, 8)) == vn(2021, 3, 16)  # overdue
    assert next_obligation_step_at(ob, POLICY, vn(2021, 3, 16, 8)) == vn(2021, 3, 17)
    assert next_obligation_step_at(ob, POLICY, vn(2021, 3, 19, 8)) == vn(2021, 3, 21)  # digest
    assert next_obligation_step_at(ob, POLICY, vn(2021, 3, 21, 8)) is None


def test_a_fulfilled_obligation_needs_no_sweep_any_more(make_obligation):
    ob = fulfil(make_obligation(due_at=vn(2021, 3, 16)), vn(2021, 3, 14))

    assert next_obligation_step_at(ob, POLICY, None) is None


def test_a_unit_without_a_parent_has_no_digest_step_to_wait_for(make_obligation):
    ob = make_obligation(due_at=vn(2021, 3, 16), recipient_unit_id=None)

    assert next_obligation_step_at(ob, POLICY, vn(2021, 3, 19, 8)) is None


def test_the_steps_before_the_next_instant_count_as_handled(make_obligation):
    ob = make_obligation(due_at=vn(2021, 3, 16))

    handled = handled_obligation_keys([(ob, vn(2021, 3, 17))], POLICY)

    assert handled == {
        SendKey(ob.obligation_id, "before_3d", ob.unit_id),
        SendKey(ob.obligation_id, "due_day", ob.unit_id),
    }


def test_sweeps_of_only_the_obligations_whose_time_has_come_send_what_sweeps_of_all_send(
    default_plan, phu_yen_units
):
    """Sweeps at 08:00 one, two or three days apart through 2021 (missed days catch up), a
    third of the reports never arriving and the rest a day after the first reminder: the same
    messages as planning over every obligation against the whole send log."""
    keep = {*phu_yen_units.subtree("555"), *phu_yen_units.children("54")}
    obligations = [o for o in derive_obligations(default_plan, phu_yen_units) if o.unit_id in keep]
    received = {
        ob.obligation_id: ob.due_at - timedelta(days=2) for i, ob in enumerate(obligations) if i % 3
    }
    next_at: dict[str, datetime | None] = {
        ob.obligation_id: next_obligation_step_at(ob, POLICY, None) for ob in obligations
    }
    send_log: set[tuple[str, str, str]] = set()
    day, turn = vn(2021, 1, 1, 8), 0
    while day < vn(2022, 1, 1):
        known = [
            fulfil(ob, received[ob.obligation_id])
            if ob.obligation_id in received and received[ob.obligation_id] <= day
            else ob
            for ob in obligations
        ]
        for ob in known:
            if ob.received_at is not None:
                next_at[ob.obligation_id] = None
        loaded = [ob for ob in known if (at := next_at[ob.obligation_id]) is not None and at <= day]
        handled = handled_obligation_keys(
            ((ob, next_at[ob.obligation_id]) for ob in loaded), POLICY
        )

        fast = due_reminders(loaded, POLICY, day, handled)
        full = due_reminders(known, POLICY, day, send_log)

        assert {m.send_key for m in fast} == {m.send_key for m in full}, day
        send_log |= {m.send_key for m in full}
        for ob in loaded:
            next_at[ob.obligation_id] = next_obligation_step_at(ob, POLICY, day)
        turn += 1
        day += timedelta(days=1 + turn % 3)
    assert len(send_log) > 500


def _case(**over: object) -> CaseFacts:
    fields: dict[str, object] = {
        "case_id": uuid.uuid4(),
        "unit_id": "C1",
        "kind": CaseKind.complaint,
        "topic": CaseTopic.land,
        "channel": CaseChannel.letter,
        "status": CaseStatus.received,
        "received_on": date(2021, 10, 19),
        "deadlines": [CaseDeadline(name="accept", due_at=vn(2021, 10, 30))],
    }
    fields.update(over)
    return CaseFacts.model_validate(fields)


UNITS = UnitTree(
    [
        Unit(unit_id="D1", name="Huyện Tây Hoà", kind="huyện", level=UnitLevel.district),
        Unit(
            unit_id="C1", name="Xã Hòa Bình 1", kind="xã", level=UnitLevel.commune, parent_id="D1"
        ),
    ]
)


def test_a_case_waits_for_the_warning_then_overdue_then_escalation_of_each_deadline():
    case, policy = _case(), CaseReminderPolicy()

    assert next_case_step_at(case, policy, None) == vn(2021, 10, 28)
    assert next_case_step_at(case, policy, vn(2021, 10, 28, 8)) == vn(2021, 10, 30)
    assert next_case_step_at(case, policy, vn(2021, 10, 30, 8)) == vn(2021, 11, 2)
    assert next_case_step_at(case, policy, vn(2021, 11, 2, 8)) is None
    assert next_case_step_at(_case(status=CaseStatus.closed), policy, None) is None


def test_the_case_steps_before_the_next_instant_are_not_planned_again():
    case, policy = _case(), CaseReminderPolicy()
    as_of = vn(2021, 11, 2, 8)

    handled = handled_case_keys([(case, vn(2021, 11, 2))], UNITS, policy)
    planned = due_case_reminders([case], UNITS, policy, as_of, handled)

    assert [(m.step, m.recipient_unit_id) for m in planned] == [("escalation", "D1")]

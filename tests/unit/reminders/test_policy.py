from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from pydantic import ValidationError

from lhpn_shared.clock import LOCAL_TZ
from reminders.domain.messages import ParentDigest, ReportReminder
from reminders.domain.obligations import Obligation, derive_obligations, fulfil
from reminders.domain.policy import Audience, ReminderPolicy, ReminderStep, due_reminders


def vn(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=LOCAL_TZ)


def sent_pairs(messages) -> set[tuple[str, str]]:
    return {(m.step, m.recipient_unit_id) for m in messages}


# The thematic annual report 2021, due before 30/10/2021 00:00, owed by the 9 districts of 54.
REPORTS_RECEIVED_AT = {
    "555": vn(2021, 10, 28, 10),
    "557": vn(2021, 10, 28, 10),
    "558": vn(2021, 10, 28, 10),
    "559": vn(2021, 10, 28, 10),
    "560": vn(2021, 10, 28, 10),
    "561": vn(2021, 10, 29, 20),  # on time, after the due-day reminder
    "562": vn(2021, 11, 3, 9),  # late
    # 563 and 564 never report
}
LATE = ("562", "563", "564")


def thematic_obligations(plan, units) -> dict[str, Obligation]:
    return {
        o.unit_id: o
        for o in derive_obligations(plan, units)
        if o.report_type == "thematic_annual" and o.period == "2021"
    }


def receive_reports_up_to(
    obligations: dict[str, Obligation], as_of: datetime
) -> dict[str, Obligation]:
    """What the service knows at `as_of`: every report that had arrived by then."""
    return {
        unit_id: fulfil(o, REPORTS_RECEIVED_AT[unit_id])
        if unit_id in REPORTS_RECEIVED_AT and REPORTS_RECEIVED_AT[unit_id] <= as_of
        else o
        for unit_id, o in obligations.items()
    }


def test_the_thematic_report_reminders_follow_the_policy_sweep_after_sweep(
    default_plan, phu_yen_units
):
    obligations = thematic_obligations(default_plan, phu_yen_units)
    policy = ReminderPolicy()
    sent_keys: set[tuple[str, str, str]] = set()
    expected = {
        vn(2021, 10, 27, 8): {("before_3d", d) for d in obligations},
        vn(2021, 10, 29, 8): {("due_day", d) for d in ("561", *LATE)},
        vn(2021, 10, 31, 8): {("after_1d", d) for d in LATE},
        vn(2021, 11, 2, 8): {("after_3d", d) for d in LATE},
        vn(2021, 11, 4, 8): {("parent_digest", "54")},
        vn(2021, 11, 5, 8): set(),
    }

    for as_of, pairs in expected.items():
        obligations = receive_reports_up_to(obligations, as_of)
        messages = due_reminders(obligations.values(), policy, as_of, sent_keys)

        assert sent_pairs(messages) == pairs, as_of
        sent_keys |= {m.send_key for m in messages}

    assert len(sent_keys) == 9 + 4 + 3 + 3 + 1


def test_the_province_gets_one_digest_naming_the_two_districts_that_never_reported(
    default_plan, phu_yen_units
):
    as_of = vn(2021, 11, 4, 8)
    obligations = receive_reports_up_to(thematic_obligations(default_plan, phu_yen_units), as_of)
    log = {
        m.send_key
        for m in due_reminders(obligations.values(), ReminderPolicy(), vn(2021, 11, 2, 8), set())
    }

    messages = due_reminders(obligations.values(), ReminderPolicy(), as_of, log)

    assert len(messages) == 1
    digest = messages[0]
    assert isinstance(digest, ParentDigest)
    assert digest.recipient_unit_id == "54"
    assert digest.late_unit_ids == ("563", "564")
    assert digest.obligation_ids == (
        "PY-2021-460:thematic_annual:2021:563",
        "PY-2021-460:thematic_annual:2021:564",
    )
    assert digest.send_key == (
        "PY-2021-460:thematic_annual:2021:digest:54",
        "parent_digest",
        "54",
    )
    assert digest.step_at == vn(2021, 11, 4)


def test_the_same_sweep_twice_sends_nothing_the_second_time(default_plan, phu_yen_units):
    obligations = derive_obligations(default_plan, phu_yen_units)
    as_of = vn(2021, 4, 1, 8)

    first = due_reminders(obligations, ReminderPolicy(), as_of, set())
    second = due_reminders(obligations, ReminderPolicy(), as_of, {m.send_key for m in first})

    assert first
    assert len({m.send_key for m in first}) == len(first)
    assert second == []


def test_a_missed_sweep_catches_up_every_step_not_sent_yet(default_plan, phu_yen_units):
    as_of = vn(2021, 10, 31, 8)
    obligations = receive_reports_up_to(thematic_obligations(default_plan, phu_yen_units), as_of)

    messages = due_reminders(obligations.values(), ReminderPolicy(), as_of, set())

    assert sent_pairs(messages) == {
        (step, d) for step in ("before_3d", "due_day", "after_1d") for d in LATE
    }
    assert [m.step for m in messages if m.recipient_unit_id == "563"] == [
        "before_3d",
        "due_day",
        "after_1d",
    ]


def test_a_unit_that_has_reported_gets_nothing_more_even_if_it_was_late(make_obligation):
    o = fulfil(make_obligation(due_at=vn(2021, 3, 16)), vn(2021, 3, 17, 9))

    assert due_reminders([o], ReminderPolicy(), vn(2021, 3, 17, 10), set()) == []
    assert due_reminders([o], ReminderPolicy(), vn(2021, 5, 1), set()) == []


def test_no_digest_is_sent_when_every_child_has_reported(make_obligation):
    children = [fulfil(make_obligation(recipient_unit_id="555"), vn(2021, 3, 19)) for _ in range(3)]

    assert due_reminders(children, ReminderPolicy(), vn(2021, 3, 25), set()) == []


def test_a_digest_goes_to_each_parent_and_lists_only_its_own_children(make_obligation):
    a1, a2, b1 = (
        make_obligation(plan_id="P", unit_id=unit_id, recipient_unit_id=unit_id[0])
        for unit_id in ("A1", "A2", "B1")
    )
    log: set[tuple[str, str, str]] = set()

    messages = due_reminders([a1, a2, b1], ReminderPolicy(), vn(2021, 3, 21, 8), log)

    digests = {m.recipient_unit_id: m for m in messages if isinstance(m, ParentDigest)}
    assert digests["A"].late_unit_ids == ("A1", "A2")
    assert digests["B"].late_unit_ids == ("B1",)
    assert len(digests) == 2


def test_a_unit_without_a_parent_gets_its_own_reminders_but_no_digest(make_obligation):
    root = make_obligation(recipient_unit_id=None)

    messages = due_reminders([root], ReminderPolicy(), vn(2021, 4, 1), set())

    assert sent_pairs(messages) == {
        (step, root.unit_id) for step in ("before_3d", "due_day", "after_1d", "after_3d")
    }


def test_a_step_fires_exactly_at_its_instant_and_not_a_moment_before(make_obligation):
    o = make_obligation(due_at=vn(2021, 3, 16))
    before_3d = vn(2021, 3, 13)

    assert due_reminders([o], ReminderPolicy(), before_3d - timedelta(microseconds=1), set()) == []
    assert [m.step for m in due_reminders([o], ReminderPolicy(), before_3d, set())] == ["before_3d"]


def test_unit_reminders_carry_the_obligation_and_its_send_key(make_obligation):
    o = make_obligation(due_at=vn(2021, 3, 16))

    (m,) = due_reminders([o], ReminderPolicy(), vn(2021, 3, 13, 8), set())

    assert isinstance(m, ReportReminder)
    assert (m.obligation_id, m.unit_id, m.due_at, m.step_at) == (
        o.obligation_id,
        o.unit_id,
        o.due_at,
        vn(2021, 3, 13),
    )
    assert m.send_key == (o.obligation_id, "before_3d", o.unit_id)


def test_a_report_type_can_have_its_own_steps(make_obligation):
    policy = ReminderPolicy(
        by_report_type={
            "thematic_annual": (ReminderStep(step="before_7d", offset=timedelta(days=-7)),)
        }
    )
    thematic = make_obligation(report_type="thematic_annual", due_at=vn(2021, 10, 30))
    monthly = make_obligation(report_type="monthly", due_at=vn(2021, 10, 16))

    messages = due_reminders([thematic, monthly], policy, vn(2021, 10, 23), set())

    assert sent_pairs(messages) == {
        ("before_7d", thematic.unit_id),
        ("before_3d", monthly.unit_id),
        ("due_day", monthly.unit_id),
        ("after_1d", monthly.unit_id),
        ("after_3d", monthly.unit_id),
        ("parent_digest", monthly.recipient_unit_id),
    }


def test_a_policy_reads_from_json_with_iso_durations():
    policy = ReminderPolicy.model_validate_json(
        '{"steps": [{"step": "before_7d", "offset": "-P7D"},'
        ' {"step": "escalate", "offset": "P10D", "audience": "parent"}]}'
    )

    assert policy.steps == (
        ReminderStep(step="before_7d", offset=timedelta(days=-7)),
        ReminderStep(step="escalate", offset=timedelta(days=10), audience=Audience.parent),
    )


def test_a_policy_with_a_repeated_step_name_is_refused():
    with pytest.raises(ValidationError, match="repeated: due_day"):
        ReminderPolicy(
            steps=(
                ReminderStep(step="due_day", offset=timedelta(days=-1)),
                ReminderStep(step="due_day", offset=timedelta(0)),
            )
        )

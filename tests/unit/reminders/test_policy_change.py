"""A policy an administrator changes: which steps of the new policy are still to come for a
subject already planned, and the checks on what may be stored (in Vietnamese, per field)."""

from __future__ import annotations

from datetime import timedelta

from reminders.domain.policy import ReminderPolicy, ReminderStep
from reminders.domain.policy_rules import CaseSteps, PolicyStep, ReportSteps, checked_policy
from reminders.domain.progress import next_obligation_step_at, resume_after

from .conftest import vn

NEW = ReminderPolicy(
    steps=(
        ReminderStep(step="before_7d", offset=timedelta(days=-7)),
        ReminderStep(step="before_3d", offset=timedelta(days=-3)),
        ReminderStep(step="after_2d", offset=timedelta(days=2)),
    )
)


def test_a_new_step_still_ahead_of_the_change_is_planned(make_obligation):
    ob = make_obligation(due_at=vn(2021, 3, 16))  # old next step: before_3d on 13/3
    changed_at = vn(2021, 3, 1)

    after = resume_after(vn(2021, 3, 13), changed_at)

    assert next_obligation_step_at(ob, NEW, after) == vn(2021, 3, 9)


def test_a_new_step_whose_instant_has_passed_is_not_sent_late(make_obligation):
    ob = make_obligation(due_at=vn(2021, 3, 16))
    changed_at = vn(2021, 3, 10)  # before_7d (9/3) is past

    after = resume_after(vn(2021, 3, 13), changed_at)

    assert next_obligation_step_at(ob, NEW, after) == vn(2021, 3, 13)


def test_the_step_a_sweep_has_not_handled_yet_still_fires_after_the_change(make_obligation):
    ob = make_obligation(due_at=vn(2021, 3, 16))
    # stored next step 13/3 00:00 not swept yet when the policy changed at 13/3 10:00
    after = resume_after(vn(2021, 3, 13), vn(2021, 3, 13, 10))

    assert next_obligation_step_at(ob, NEW, after) == vn(2021, 3, 13)


def test_a_subject_with_nothing_left_resumes_at_the_change(make_obligation):
    ob = make_obligation(due_at=vn(2021, 3, 16))

    after = resume_after(None, vn(2021, 3, 17))

    assert next_obligation_step_at(ob, NEW, after) == vn(2021, 3, 18)


def test_the_stored_policy_is_built_from_valid_steps():
    checked = checked_policy(
        ReportSteps(
            steps=[PolicyStep(step="before_3d", offset="-P3D")],
            by_report_type={"monthly": []},
        ),
        CaseSteps(steps=[PolicyStep(step="overdue", offset="PT0S")]),
    )

    assert not isinstance(checked, list)
    reports, cases = checked
    assert reports.steps_for("monthly") == ()
    assert reports.steps_for("quarterly")[0].step == "before_3d"
    assert [s.step for s in cases.steps] == ["overdue"]


def test_each_problem_names_its_field_in_vietnamese():
    steps = [PolicyStep(step="a", offset="-P1D") for _ in range(11)]
    steps[3] = PolicyStep(step="Bước 4", offset="P400D")
    steps[5] = PolicyStep(step="b\n", offset="-P1D")  # `$` alone would let the newline by

    problems = checked_policy(
        ReportSteps(steps=steps, by_report_type={"bad type!": []}),
        CaseSteps(steps=[]),
    )

    assert isinstance(problems, list)
    locs = {loc: msg for loc, msg in problems}
    assert locs[("reports", "steps")] == "Tối đa 10 bước nhắc."
    assert "chữ thường" in locs[("reports", "steps", 3, "step")]
    assert "366 ngày" in locs[("reports", "steps", 3, "offset")]
    assert "đã có ở trên" in locs[("reports", "steps", 1, "step")]
    assert "chữ thường" in locs[("reports", "steps", 5, "step")]
    assert locs[("reports", "by_report_type", "bad type!")] == "Mã loại báo cáo không hợp lệ."

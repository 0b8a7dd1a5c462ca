"""How one event changes the stored facts: latest revision wins, voids stick, deltas move
an activity's or a case's contribution between counters."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from aggregation.domain.facts import (
    ActivityDelta,
    CaseState,
    DayWindow,
    UnitActivityCounters,
    UnitCaseCounters,
    latest,
    on_activity_recorded,
    on_activity_voided,
    on_case_event,
    on_report_submitted,
)
from lhpn_shared.contracts.activities import Activity, ActivityKind
from lhpn_shared.contracts.cases import CaseFacts, CaseKind, CaseStatus, CaseStatusChange, CaseTopic
from lhpn_shared.contracts.events import ActivityVoided
from lhpn_shared.contracts.reports import Report
from lhpn_shared.contracts.units import Unit, UnitLevel


def make_activity(**overrides: Any) -> Activity:
    fields: dict[str, Any] = {
        "activity_id": uuid.uuid4(),
        "unit_id": f"U{uuid.uuid4().hex[:6]}",
        "kind": ActivityKind.supervision,
        "occurred_on": date(2021, 3, 14),
        "title": "Giám sát thực hiện chính sách bảo hiểm y tế",
        "metrics": {"recommendations": 4, "recommendations_accepted": 3},
    }
    fields.update(overrides)
    return Activity(**fields)


def make_void(activity: Activity, revision: int, **overrides: Any) -> ActivityVoided:
    fields: dict[str, Any] = {
        "activity_id": activity.activity_id,
        "unit_id": activity.unit_id,
        "revision": revision,
        "voided_at": datetime(2021, 4, 1, tzinfo=UTC),
    }
    fields.update(overrides)
    return ActivityVoided(**fields)


def make_report(**overrides: Any) -> Report:
    due = datetime(2021, 3, 15, 17, tzinfo=UTC)
    fields: dict[str, Any] = {
        "report_id": uuid.uuid4(),
        "unit_id": f"U{uuid.uuid4().hex[:6]}",
        "report_type": "monthly",
        "period": "2021-03",
        "indicators": {"supervision.count": 2},
        "received_at": due - timedelta(days=1),
        "due_at": due,
        "on_time": True,
    }
    fields.update(overrides)
    return Report(**fields)


def make_case(**overrides: Any) -> CaseFacts:
    fields: dict[str, Any] = {
        "case_id": uuid.uuid4(),
        "unit_id": f"U{uuid.uuid4().hex[:6]}",
        "kind": CaseKind.complaint,
        "topic": CaseTopic.land,
        "channel": "walk_in",
        "status": CaseStatus.received,
        "received_on": date(2021, 3, 2),
        "flags": ["poor_household"],
    }
    fields.update(overrides)
    return CaseFacts(**fields)


def run(events: list[Activity | ActivityVoided]):
    """Feed activity events in order; return the final state and all deltas produced."""
    state, deltas = None, []
    for event in events:
        on = on_activity_recorded if isinstance(event, Activity) else on_activity_voided
        change = on(state, event)
        state = change.state
        deltas += change.deltas
    return state, deltas


def net(deltas: list[ActivityDelta]) -> dict[tuple[str, str, date], int]:
    out: dict[tuple[str, str, date], int] = {}
    for d in deltas:
        key = (d.unit_id, d.kind.value, d.occurred_on)
        out[key] = out.get(key, 0) + d.sign
    return {k: n for k, n in out.items() if n}


def test_a_new_activity_adds_one_to_its_unit_kind_and_day():
    activity = make_activity()
    state, deltas = run([activity])
    assert state.revision == 1
    assert [(d.sign, d.unit_id, d.kind, d.occurred_on, d.metrics) for d in deltas] == [
        (1, activity.unit_id, ActivityKind.supervision, date(2021, 3, 14), activity.metrics)
    ]


def test_a_correction_moves_the_activity_to_its_new_kind_day_and_unit():
    first = make_activity()
    moved = first.model_copy(
        update={
            "revision": 2,
            "kind": ActivityKind.dialogue,
            "occurred_on": date(2021, 7, 1),
            "unit_id": "OTHER",
            "metrics": {"participants": 30},
        }
    )
    _, deltas = run([first, moved])
    assert net(deltas) == {("OTHER", "dialogue", date(2021, 7, 1)): 1}
    assert deltas[-2].sign == -1 and deltas[-2].metrics == first.metrics


def test_a_correction_of_the_title_only_leaves_the_counters_alone():
    first = make_activity()
    change = on_activity_recorded(
        run([first])[0], first.model_copy(update={"revision": 2, "title": "Tên khác"})
    )
    assert change.changed and change.deltas == [] and change.state.revision == 2


@pytest.mark.parametrize("revision", [1, 2])
def test_a_revision_not_above_the_stored_one_changes_nothing(revision):
    stored = run([make_activity(revision=2)])[0]
    change = on_activity_recorded(
        stored,
        make_activity(
            activity_id=stored.activity_id, revision=revision, kind=ActivityKind.training
        ),
    )
    assert not change.changed and change.deltas == [] and change.state == stored


def test_a_void_after_the_record_removes_its_contribution():
    activity = make_activity()
    state, deltas = run([activity, make_void(activity, revision=2)])
    assert state.voided and state.revision == 2
    assert net(deltas) == {}


def test_a_record_arriving_after_its_void_stays_voided_when_not_newer():
    activity = make_activity()
    correction = activity.model_copy(update={"revision": 2, "occurred_on": date(2021, 8, 1)})
    state, deltas = run([make_void(activity, revision=3), correction, activity])
    assert state.voided and state.revision == 3
    assert deltas == []


def test_a_correction_newer_than_the_void_restores_the_activity():
    activity = make_activity()
    restored = activity.model_copy(update={"revision": 3})
    state, deltas = run([make_void(activity, revision=2), restored, activity])
    assert not state.voided
    assert net(deltas) == {(activity.unit_id, "supervision", activity.occurred_on): 1}


def test_at_equal_revisions_the_void_wins_whatever_came_first():
    activity = make_activity(revision=2)
    void = make_void(activity, revision=2)
    one, _ = run([activity, void])
    other, _ = run([void, activity])
    assert one == other and one.voided


def test_the_same_activity_events_in_any_order_end_in_the_same_state_and_counters():
    first = make_activity()
    events = [
        first,
        first.model_copy(update={"revision": 2, "occurred_on": date(2021, 1, 1)}),
        make_void(first, revision=3),
        first.model_copy(
            update={"revision": 4, "kind": ActivityKind.opinion_digest, "metrics": {"issues": 5}}
        ),
    ]
    results = [
        run(order) for order in (events, events[::-1], [events[2], events[0], events[3], events[1]])
    ]
    states = [state for state, _ in results]
    assert states[0] == states[1] == states[2]
    assert (
        net(results[0][1])
        == net(results[1][1])
        == net(results[2][1])
        == {(first.unit_id, "opinion_digest", date(2021, 3, 14)): 1}
    )


def test_a_delta_is_one_inc_on_the_unit_year_document():
    delta = ActivityDelta(
        unit_id="22015",
        kind=ActivityKind.supervision,
        occurred_on=date(2021, 3, 4),
        sign=-1,
        metrics={"recommendations": 4, "recommendations_accepted": 0},
    )
    assert delta.increments() == {
        "kinds.supervision.activities": -1,
        "kinds.supervision.months.03.activities": -1,
        "kinds.supervision.months.03.days.04": -1,
        "kinds.supervision.metrics.recommendations": -4,
        "kinds.supervision.months.03.metrics.recommendations": -4,
    }


def test_counters_answer_counts_over_any_days_of_the_year():
    counters = UnitActivityCounters(unit_id="22015", year=2021)
    for day in [
        date(2021, 1, 1),
        date(2021, 3, 14),
        date(2021, 3, 15),
        date(2021, 6, 30),
        date(2021, 7, 1),
    ]:
        counters.apply(
            ActivityDelta(unit_id="22015", kind=ActivityKind.supervision, occurred_on=day, sign=1)
        )
    counters.apply(
        ActivityDelta(
            unit_id="22015", kind=ActivityKind.training, occurred_on=date(2021, 3, 1), sign=1
        )
    )
    supervision = ["supervision"]
    assert (
        counters.count(supervision, DayWindow.of(2021, date(2021, 1, 1), date(2021, 12, 31))) == 5
    )
    assert counters.count(supervision, DayWindow.of(2021, date(2021, 1, 1), date(2021, 3, 14))) == 2
    assert (
        counters.count(supervision, DayWindow.of(2021, date(2021, 3, 15), date(2021, 6, 30))) == 2
    )
    assert counters.count(supervision, DayWindow.of(2021, date(2021, 7, 1), date(2022, 5, 1))) == 1
    assert (
        counters.count(supervision, DayWindow.of(2021, date(2020, 1, 1), date(2020, 12, 31))) == 0
    )
    assert (
        counters.count(
            ["supervision", "training"], DayWindow.of(2021, date(2021, 3, 1), date(2021, 3, 31))
        )
        == 3
    )


def test_a_day_window_needs_one_lookup_per_month_and_days_only_at_its_ends():
    window = DayWindow.of(2021, date(2021, 2, 10), date(2021, 5, 31))
    assert window.months == (
        ("02", "10", "28"),
        ("03", None, None),
        ("04", None, None),
        ("05", None, None),
    )
    assert DayWindow.of(2021, date(2020, 6, 1), date(2022, 6, 1)).whole_year


def test_a_resubmitted_report_replaces_the_figures_and_keeps_the_first_receipt():
    first = make_report(on_time=True)
    late = first.model_copy(
        update={
            "revision": 2,
            "indicators": {"supervision.count": 5},
            "received_at": first.due_at + timedelta(days=2),
            "on_time": False,
        }
    )
    for order in ([first, late], [late, first], [first, late, first, late]):
        state = None
        for report in order:
            state = on_report_submitted(state, report).state
        assert state.revision == 2
        assert state.indicators == {"supervision.count": 5}
        assert (state.received_at, state.on_time) == (first.received_at, True)


def test_a_duplicate_report_changes_nothing():
    report = make_report()
    state = on_report_submitted(None, report).state
    assert not on_report_submitted(state, report).changed


def test_a_case_status_change_moves_its_count_from_one_status_to_the_next():
    opened = make_case()
    state = on_case_event(None, opened).state
    change = on_case_event(
        state,
        CaseStatusChange(
            **opened.model_dump(exclude={"status", "revision"}),
            status=CaseStatus.accepted,
            revision=2,
            from_status=CaseStatus.received,
            changed_at=datetime(2021, 3, 3, tzinfo=UTC),
        ),
    )
    assert [(d.sign, d.status) for d in change.deltas] == [
        (-1, CaseStatus.received),
        (1, CaseStatus.accepted),
    ]


def test_a_closed_case_keeps_how_it_ended():
    opened = make_case()
    closed = CaseStatusChange(
        **opened.model_dump(exclude={"status", "revision"}),
        status=CaseStatus.closed,
        revision=5,
        from_status=CaseStatus.mediation_succeeded,
        changed_at=datetime(2021, 4, 3, tzinfo=UTC),
    )
    state: CaseState = on_case_event(on_case_event(None, opened).state, closed).state
    assert state.outcome is CaseStatus.mediation_succeeded
    assert not on_case_event(state, opened).changed


def test_case_counters_count_by_month_of_receipt():
    counters = UnitCaseCounters(unit_id="22015", year=2021)
    for delta in on_case_event(None, make_case(unit_id="22015", overdue=True)).deltas:
        counters.apply(delta)
    month = counters.months["03"]
    assert month == {
        "received": 1,
        "overdue": 1,
        "by_kind": {"complaint": 1},
        "by_topic": {"land": 1},
        "by_status": {"received": 1},
        "by_flag": {"poor_household": 1},
    }


def test_the_latest_revision_of_a_unit_is_kept():
    old = Unit(unit_id="22015", name="Phường 1", kind="phường", level=UnitLevel.commune, revision=2)
    new = old.model_copy(update={"name": "Phường Một", "revision": 3})
    assert latest(None, old) is old
    assert latest(old, new) is new
    assert latest(new, old) is new

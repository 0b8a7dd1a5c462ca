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
    due_millis,
    latest,
    on_activity_recorded,
    on_activity_voided,
    on_case_event,
    on_report_submitted,
)
from aggregation.domain.rollup import add_into, add_leaves, difference
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


def test_a_delta_adds_one_activity_and_its_metrics_to_the_month_of_its_kind():
    delta = ActivityDelta(
        unit_id="22015",
        kind=ActivityKind.supervision,
        occurred_on=date(2021, 3, 4),
        sign=-1,
        metrics={"recommendations": 4, "recommendations_accepted": 0},
    )
    assert delta.totals() == {"supervision": {"03": {"n": -1, "m": {"recommendations": -4}}}}


def test_adding_and_removing_the_same_counts_leaves_nothing_behind():
    rollup: dict = {}
    one = {"supervision": {"03": {"n": 1, "m": {"recommendations": 4}}}}
    other = {"supervision": {"03": {"n": 1}}, "training": {"07": {"n": 2}}}
    add_into(rollup, one)
    add_into(rollup, other)
    assert rollup == {
        "supervision": {"03": {"n": 2, "m": {"recommendations": 4}}},
        "training": {"07": {"n": 2}},
    }
    add_into(rollup, one, -1)
    add_into(rollup, other, -1)
    assert rollup == {}


def test_a_flat_difference_changes_only_the_leaves_that_differ():
    before = {("t", "0", "0:364", "n"): 1, ("r", "2", "e"): 1}
    after = {("t", "0", "0:364", "n"): 1, ("t", "0", "0:364", "m", "40"): 1}
    change = difference(after, before)
    assert change == {("t", "0", "0:364", "m", "40"): 1, ("r", "2", "e"): -1}
    summary = {"t": {"0": {"0:364": {"n": 5}}}, "r": {"2": {"e": 1}}}
    add_leaves(summary, change)
    assert summary == {"t": {"0": {"0:364": {"n": 5, "m": {"40": 1}}}}}


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


def test_a_case_counts_in_the_month_of_its_receipt():
    (delta,) = on_case_event(None, make_case(unit_id="22015", overdue=True)).deltas
    assert delta.counts() == {
        "03": {
            "received": 1,
            "overdue": 1,
            "by_kind": {"complaint": 1},
            "by_topic": {"land": 1},
            "by_status": {"received": 1},
            "by_flag": {"poor_household": 1},
        }
    }


def test_an_open_case_not_flagged_counts_under_its_next_due_instant():
    due = datetime(2021, 3, 13, 17, 0, tzinfo=UTC)  # 00:00 on 14 March, Vietnam time
    (delta,) = on_case_event(None, make_case(next_due_at=due)).deltas
    assert delta.counts()["03"]["due"] == {str(due_millis(due)): 1}
    assert "overdue" not in delta.counts()["03"]


def test_the_latest_revision_of_a_unit_is_kept():
    old = Unit(unit_id="22015", name="Phường 1", kind="phường", level=UnitLevel.commune, revision=2)
    new = old.model_copy(update={"name": "Phường Một", "revision": 3})
    assert latest(None, old) is old
    assert latest(old, new) is new
    assert latest(new, old) is new

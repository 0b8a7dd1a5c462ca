"""Issue 13, partitions: what the router sends when a correction moves an activity or case to
another partition (`moves.place`), and how a partition's writer applies the departure
(`domain.facts`). The whole stream through the router: tests/unit/aggregation/test_partitions.py."""

from __future__ import annotations

import uuid
from datetime import date, datetime

import pytest

from aggregation.batch import DEPARTED, Batch, parse_event
from aggregation.domain.facts import (
    CaseState,
    Departed,
    on_activity_departed,
    on_activity_recorded,
    on_case_departed,
    on_case_event,
)
from aggregation.moves import Whereabouts, place
from aggregation.routing import EVERY, Route
from lhpn_shared.broker import Reject
from lhpn_shared.clock import LOCAL_TZ
from lhpn_shared.contracts.activities import Activity
from lhpn_shared.contracts.cases import CaseFacts
from lhpn_shared.contracts.events import make_event
from lhpn_shared.trust import EventOwners
from tests.unit.aggregation.generated import national_plan
from tests.unit.aggregation.memory import events_of

AT = datetime(2021, 3, 1, 9, tzinfo=LOCAL_TZ)


def make_activity(revision: int = 1, unit_id: str = "X1", **changes: object) -> Activity:
    return Activity.model_validate(
        {
            "activity_id": str(uuid.UUID(int=21)),
            "unit_id": unit_id,
            "kind": "supervision",
            "occurred_on": "2021-03-01",
            "title": "Giám sát",
            "metrics": {"participants": 5},
            "revision": revision,
            "recorded_at": AT.isoformat(),
            **changes,
        }
    )


def make_case(revision: int = 1, unit_id: str = "X1") -> CaseFacts:
    return CaseFacts.model_validate(
        {
            "case_id": str(uuid.UUID(int=22)),
            "unit_id": unit_id,
            "kind": "complaint",
            "topic": "land",
            "channel": "walk_in",
            "status": "received",
            "received_on": "2021-03-01",
            "revision": revision,
        }
    )


def event_of(data: Activity | CaseFacts):
    kind = "activity.recorded" if isinstance(data, Activity) else "case.opened"
    (event,) = events_of([make_event(kind, data, source="t", occurred_at=AT)])
    return event


def test_a_correction_to_another_partition_sends_a_departure_to_the_old_one_then_the_event():
    event = event_of(make_activity(revision=2, unit_id="Y1"))
    sends, after = place(event, Route(1, "Y"), Whereabouts(1, False, 0, "X"))
    assert [(type(e.data).__name__, r.partition) for e, r in sends] == [
        ("Departed", 0),
        ("Activity", 1),
    ]
    departure = sends[0][0].data
    assert isinstance(departure, Departed)
    assert (departure.entity, departure.revision, departure.partition) == ("activities", 2, 1)
    assert after == Whereabouts(2, False, 1, "Y")
    again, _ = place(event, Route(1, "Y"), Whereabouts(1, False, 0, "X"))
    assert again[0][0].envelope.event_id == sends[0][0].envelope.event_id  # a re-send: the same


def test_an_older_version_goes_where_the_latest_went_whatever_its_unit():
    event = event_of(make_case(revision=1, unit_id="X1"))
    latest = Whereabouts(3, False, 1, "Y")
    sends, after = place(event, Route(0, "X"), latest)
    assert [(e, r.partition) for e, r in sends] == [(event, 1)]
    assert after == latest


def test_a_newer_version_in_the_same_partition_and_a_first_version_go_as_before():
    event = event_of(make_activity(revision=2))
    assert place(event, Route(0, "X"), Whereabouts(1, False, 0, "X")) == (
        [(event, Route(0, "X"))],
        Whereabouts(2, False, 0, "X"),
    )
    assert place(event, Route(1, "Y"), None) == (
        [(event, Route(1, "Y"))],
        Whereabouts(2, False, 1, "Y"),
    )
    (plan,) = events_of([make_event("plan.published", national_plan(), source="t", occurred_at=AT)])
    assert place(plan, Route(EVERY, ""), None) == ([(plan, Route(EVERY, ""))], None)


def test_a_void_of_the_same_revision_is_newer_than_the_record_it_voids():
    void = event_of(make_activity(revision=2, unit_id="Y1", voided=True))
    sends, after = place(void, Route(1, "Y"), Whereabouts(2, False, 0, "X"))
    assert [r.partition for _, r in sends] == [0, 1]
    assert after == Whereabouts(2, True, 1, "Y")


def test_a_departed_activity_counts_as_voided_until_a_later_revision_brings_it_back():
    recorded = on_activity_recorded(None, make_activity(revision=1)).state
    departed = Departed(
        entity="activities", entity_id=recorded.activity_id, revision=2, partition=1
    )
    gone = on_activity_departed(recorded, departed)
    assert [d.sign for d in gone.deltas] == [-1] and gone.state.voided
    assert not on_activity_departed(gone.state, departed).changed  # twice is once
    stale = on_activity_recorded(gone.state, make_activity(revision=2, unit_id="Y1"))
    assert not stale.changed
    back = on_activity_recorded(gone.state, make_activity(revision=3))
    assert [d.sign for d in back.deltas] == [1]


def test_a_departed_case_is_a_tombstone_that_counts_nothing_until_it_comes_back():
    opened = on_case_event(None, make_case()).state
    departed = Departed(entity="cases", entity_id=opened.case_id, revision=2, partition=1)
    gone = on_case_departed(opened, departed)
    assert isinstance(gone.state, CaseState) and gone.state.departed
    assert [d.sign for d in gone.deltas] == [-1]
    assert gone.state.contribution(1) is None
    assert not on_case_departed(gone.state, departed).changed
    back = on_case_event(gone.state, make_case(revision=3))
    assert [d.sign for d in back.deltas] == [1] and not back.state.departed
    assert back.state.received_on == date(2021, 3, 1)


def test_a_case_departed_before_any_revision_arrived_keeps_a_late_older_revision_out():
    # revision 1 dead-lettered in partition 0, revision 2 moved the case to partition 1: the
    # departure finds nothing in partition 0; revision 1 replayed there later must not count
    departed = Departed(entity="cases", entity_id=make_case().case_id, revision=2, partition=1)
    gone = on_case_departed(None, departed)
    assert gone.changed and gone.deltas == []
    assert isinstance(gone.state, CaseState) and gone.state.departed
    assert gone.state.revision == 2 and gone.state.contribution(1) is None
    assert not on_case_departed(gone.state, departed).changed  # twice is once
    late = on_case_event(gone.state, make_case(revision=1))
    assert not late.changed and late.deltas == []
    back = on_case_event(gone.state, make_case(revision=3))
    assert [d.sign for d in back.deltas] == [1] and not back.state.departed


def test_a_departure_is_applied_by_a_batch_through_the_writers_delta_path():
    recorded = event_of(make_activity(revision=1))
    batch = Batch("t", {"activities": {}, "cases": {}, "units": {}, "plans": {}, "reports": {}})
    assert batch.apply(recorded.data)
    moved = event_of(make_activity(revision=2, unit_id="Y1"))
    departure, _ = place(moved, Route(1, "Y"), Whereabouts(1, False, 0, "X"))[0][0]
    parsed = parse_event(departure.body.encode(), publisher=None, owners=None)
    assert batch.apply(parsed.data)
    assert [d.sign for d in batch.activity_deltas] == [1, -1]


def test_a_departure_from_the_event_exchange_is_refused_whoever_sends_it():
    moved = event_of(make_activity(revision=2, unit_id="Y1"))
    departure = place(moved, Route(1, "Y"), Whereabouts(1, False, 0, "X"))[0][0][0]
    assert departure.envelope.type == DEPARTED
    owners = EventOwners("lhpn-")
    for publisher in ("lhpn-aggregation", "lhpn-intake", None):
        with pytest.raises(Reject):
            parse_event(departure.body.encode(), publisher=publisher, owners=owners)

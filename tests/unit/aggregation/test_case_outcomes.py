"""Why a case's outcome never depends on the partition it is counted in (docs/aggregation.md,
"What partitions do not do"): the cases workflow closes a case only from a status aggregation
counts as an outcome, so every event into `closed` names its outcome in `from_status`, and
aggregation reads it from there even where it never saw the case before. If the workflow ever
allowed closing from another status, the first test fails and the gap is open again."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from aggregation.domain.facts import OUTCOMES, on_case_event
from cases.domain.workflow import ALLOWED
from lhpn_shared.contracts.cases import CaseStatus, CaseStatusChange

from .test_facts import make_case

CLOSED_FROM = sorted(s for s, targets in ALLOWED.items() if CaseStatus.closed in targets)


def test_the_workflow_closes_a_case_only_from_an_outcome():
    assert CLOSED_FROM, "the workflow closes no case: the table changed shape"
    assert [s for s in CLOSED_FROM if s not in OUTCOMES] == []


@pytest.mark.parametrize("from_status", CLOSED_FROM)
def test_a_close_seen_first_in_a_partition_counts_its_outcome(from_status: CaseStatus):
    closed = CaseStatusChange(
        **make_case(unit_id="54001").model_dump(exclude={"status", "revision"}),
        status=CaseStatus.closed,
        revision=4,
        from_status=from_status,
        changed_at=datetime(2021, 5, 3, tzinfo=UTC),
    )
    change = on_case_event(None, closed)  # no earlier state: the case's first event here
    assert change.state.outcome is from_status
    (delta,) = change.deltas
    assert delta.counts()[next(iter(delta.counts()))]["by_outcome"] == {from_status.value: 1}

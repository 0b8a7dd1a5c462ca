"""A commune of district A cannot void, correct or take over an activity, a report or a case of
district B through any door — HTTP routes, `POST /api/v1/events`, the inbound use cases with a
system principal — and the record is unchanged afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from cases.service import Cases
from intake.service import Intake
from lhpn_shared.access import AccessDenied
from lhpn_shared.auth import Principal, Role
from lhpn_shared.broker import Reject
from lhpn_shared.contracts.events import Envelope
from tests.integration.access.conftest import (
    COMMUNE_A,
    COMMUNE_B,
    Stack,
    activity_body,
    case_body,
    report_body,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

SYSTEM_OF_A = Principal(subject="broker:commune-a-app", role=Role.system, unit_id=COMMUNE_A)


async def records_of_b(stack: Stack) -> dict[str, Any]:
    """B's activity, report and case as B's own staff sees them."""
    b = stack.headers(Role.commune_staff, COMMUNE_B)
    intake, cases = stack.clients["intake"], stack.clients["cases"]
    activity = await intake.get(f"/api/v1/activities/{stack.activities[COMMUNE_B]}", headers=b)
    report = await intake.get(f"/api/v1/reports/{stack.reports[COMMUNE_B]}", headers=b)
    case = await cases.get(f"/api/v1/cases/{stack.cases[COMMUNE_B]}", headers=b)
    assert activity.status_code == report.status_code == case.status_code == 200
    return {"activity": activity.json(), "report": report.json(), "case": case.json()}


def envelope(event_type: str, unit_id: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "type": event_type,
        "version": 1,
        "occurred_at": datetime.now(UTC).isoformat(),
        "source": "commune-a-app",
        "unit_id": unit_id,
        "data": data,
    }


def report_event_data(unit_id: str, **over: Any) -> dict[str, Any]:
    """A report as `report.submitted` carries it."""
    now = datetime.now(UTC).isoformat()
    return report_body(unit_id, received_at=now, due_at=now, on_time=True, **over)


def stolen_activity(stack: Stack, unit_id: str) -> dict[str, Any]:
    """B's activity id, recorded again for `unit_id` with a higher revision."""
    return activity_body(
        unit_id,
        activity_id=stack.activities[COMMUNE_B],
        title="Chiếm hoạt động của đơn vị khác",
        revision=9,
        recorded_at=datetime.now(UTC).isoformat(),
        recorded_by="someone",
    )


async def test_a_commune_of_district_a_cannot_touch_district_bs_records_over_http(
    stack: Stack,
) -> None:
    before = await records_of_b(stack)
    a = stack.headers(Role.commune_staff, COMMUNE_A)
    intake, cases = stack.clients["intake"], stack.clients["cases"]
    activity_id, report_id = stack.activities[COMMUNE_B], stack.reports[COMMUNE_B]
    case_id = stack.cases[COMMUNE_B]

    attempts = {
        "void": await intake.delete(f"/api/v1/activities/{activity_id}", headers=a),
        "correct": await intake.put(
            f"/api/v1/activities/{activity_id}",
            json={**activity_body(COMMUNE_B), "title": "Sửa trái phép"},
            headers=a,
        ),
        "take over by correcting": await intake.put(
            f"/api/v1/activities/{activity_id}", json=activity_body(COMMUNE_A), headers=a
        ),
        "take over by recording": await intake.post(
            "/api/v1/activities",
            json=activity_body(COMMUNE_A, activity_id=activity_id),
            headers=a,
        ),
        "resubmit B's report": await intake.post(
            "/api/v1/reports", json=report_body(COMMUNE_B, narrative="Nộp thay"), headers=a
        ),
        "take over B's report id": await intake.post(
            "/api/v1/reports", json=report_body(COMMUNE_A, report_id=report_id), headers=a
        ),
        "move B's case": await cases.post(
            f"/api/v1/cases/{case_id}/transitions", json={"to": "declined", "note": "x"}, headers=a
        ),
        "extend B's case": await cases.post(
            f"/api/v1/cases/{case_id}/extensions", json={"note": "x"}, headers=a
        ),
        "take over B's case id": await cases.post(
            "/api/v1/cases", json=case_body(COMMUNE_A, case_id=case_id), headers=a
        ),
    }
    statuses = {name: r.status_code for name, r in attempts.items()}
    assert statuses == {
        "void": 403,
        "correct": 403,
        "take over by correcting": 403,
        "take over by recording": 409,
        "resubmit B's report": 403,
        "take over B's report id": 409,
        "move B's case": 403,
        "extend B's case": 403,
        "take over B's case id": 409,
    }
    # the refusals do not show B's record
    for r in attempts.values():
        assert "Chiếm" not in r.text and "Nguyễn Thị B" not in r.text
    assert await records_of_b(stack) == before


async def test_a_commune_of_district_a_cannot_touch_district_bs_records_through_post_events(
    stack: Stack,
) -> None:
    before = await records_of_b(stack)
    a = stack.headers(Role.commune_staff, COMMUNE_A)
    activity_id, report_id = stack.activities[COMMUNE_B], stack.reports[COMMUNE_B]
    voided = {"activity_id": activity_id, "unit_id": COMMUNE_A, "revision": 9}
    voided |= {"voided_at": datetime.now(UTC).isoformat()}
    attempts = {
        "correct as B": envelope("activity.recorded", COMMUNE_B, stolen_activity(stack, COMMUNE_B)),
        "take over as A": envelope(
            "activity.recorded", COMMUNE_A, stolen_activity(stack, COMMUNE_A)
        ),
        "void, naming A": envelope("activity.voided", COMMUNE_A, voided),
        "take over the report id": envelope(
            "report.submitted", COMMUNE_A, report_event_data(COMMUNE_A, report_id=report_id)
        ),
        "resubmit B's report": envelope(
            "report.submitted", COMMUNE_B, report_event_data(COMMUNE_B, narrative="Nộp thay")
        ),
    }
    statuses = {}
    for name, body in attempts.items():
        r = await stack.clients["intake"].post("/api/v1/events", json=body, headers=a)
        statuses[name] = r.status_code
    assert statuses == {
        "correct as B": 403,
        "take over as A": 409,
        "void, naming A": 403,
        "take over the report id": 409,
        "resubmit B's report": 403,
    }
    assert await records_of_b(stack) == before


async def test_a_system_of_commune_a_cannot_touch_district_bs_records_through_the_inbound_use_cases(
    stack: Stack,
) -> None:
    before = await records_of_b(stack)
    intake: Intake = stack.apps["intake"].state.intake
    cases: Cases = stack.apps["cases"].state.cases
    activity_id, report_id = stack.activities[COMMUNE_B], stack.reports[COMMUNE_B]
    voided = {"activity_id": activity_id, "unit_id": COMMUNE_A, "revision": 9}
    voided |= {"voided_at": datetime.now(UTC).isoformat()}
    case_facts = {
        **{k: v for k, v in case_body(COMMUNE_A).items() if k not in ("summary", "requester")},
        "case_id": stack.cases[COMMUNE_B],
        "status": "received",
        "deadlines": [],
        "revision": 1,
    }
    doors: dict[str, Callable[[], Awaitable[object]]] = {
        "activity as B": lambda: intake.handle_inbound(
            Envelope.model_validate(
                envelope("activity.recorded", COMMUNE_B, stolen_activity(stack, COMMUNE_B))
            ),
            SYSTEM_OF_A,
        ),
        "activity as A": lambda: intake.handle_inbound(
            Envelope.model_validate(
                envelope("activity.recorded", COMMUNE_A, stolen_activity(stack, COMMUNE_A))
            ),
            SYSTEM_OF_A,
        ),
        "void": lambda: intake.handle_inbound(
            Envelope.model_validate(envelope("activity.voided", COMMUNE_A, voided)), SYSTEM_OF_A
        ),
        "report id": lambda: intake.handle_inbound(
            Envelope.model_validate(
                envelope(
                    "report.submitted",
                    COMMUNE_A,
                    report_event_data(COMMUNE_A, report_id=report_id),
                )
            ),
            SYSTEM_OF_A,
        ),
        "case id": lambda: cases.handle_inbound(
            Envelope.model_validate(envelope("case.opened", COMMUNE_A, case_facts)), SYSTEM_OF_A
        ),
        "case of B": lambda: cases.handle_inbound(
            Envelope.model_validate(
                envelope("case.opened", COMMUNE_B, case_facts | {"unit_id": COMMUNE_B})
            ),
            SYSTEM_OF_A,
        ),
    }
    outcomes = {}
    for name, door in doors.items():
        try:
            outcomes[name] = f"accepted: {await door()}"
        except (AccessDenied, Reject) as exc:
            outcomes[name] = type(exc).__name__
        except Exception as exc:  # Conflict of the service
            outcomes[name] = type(exc).__name__
    assert outcomes == {
        "activity as B": "AccessDenied",
        "activity as A": "Conflict",
        "void": "AccessDenied",
        "report id": "Conflict",
        "case id": "Reject",
        "case of B": "Reject",
    }
    assert await records_of_b(stack) == before

"""Case deadlines from `case.*` facts: warning, overdue, escalation; nothing once it moves on."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from lhpn_shared.contracts.cases import (
    CaseChannel,
    CaseDeadline,
    CaseFacts,
    CaseKind,
    CaseStatus,
    CaseStatusChange,
    CaseTopic,
)
from lhpn_shared.contracts.events import Envelope, make_event
from tests.support.http import eventually

from .conftest import PROVINCE, Mail, Service, SmtpSink, email_of, vn


def deadline(name: str, last_day: date) -> CaseDeadline:
    day_after = date.fromordinal(last_day.toordinal() + 1)
    return CaseDeadline(
        name=name, due_on=last_day, due_at=vn(day_after.year, day_after.month, day_after.day)
    )


def make_case(**over: object) -> CaseFacts:
    fields: dict[str, object] = {
        "case_id": uuid.uuid4(),
        "unit_id": "562",
        "kind": CaseKind.complaint,
        "topic": CaseTopic.land,
        "channel": CaseChannel.letter,
        "status": CaseStatus.received,
        "received_on": date(2021, 10, 19),
        "deadlines": [deadline("accept", date(2021, 10, 29))],
    }
    fields.update(over)
    return CaseFacts.model_validate(fields)


def opened(case: CaseFacts) -> Envelope:
    return make_event(
        "case.opened", case, source="cases", occurred_at=vn(2021, 10, 19), unit_id=case.unit_id
    )


def moved(
    case: CaseFacts, at: datetime, event_type: str = "case.status_changed", **over: object
) -> tuple[CaseFacts, Envelope]:
    """The case's next revision, and the event the cases service publishes for it."""
    new = case.model_copy(update={**over, "revision": case.revision + 1})
    change = CaseStatusChange(**new.model_dump(), from_status=case.status, changed_at=at)
    event = make_event(event_type, change, source="cases", occurred_at=at, unit_id=case.unit_id)
    return new, event


def sent(mails: list[Mail]) -> set[tuple[str, str, str]]:
    """(recipient, step, case id) of each case mail."""
    return {(r, m.step, m.subject_ref.split(":")[1]) for m in mails for r in m.recipients}


async def test_a_case_deadline_gets_a_warning_then_overdue_then_escalation_until_it_moves_on(
    districts: Service, smtp: SmtpSink
) -> None:
    moving, stuck = make_case(), make_case()
    a, b = str(moving.case_id), str(stuck.case_id)
    await districts.publish(opened(moving), opened(stuck))
    await _until_case_revision(districts, a, 1)  # both consumed before the first sweep
    await _until_case_revision(districts, b, 1)

    async def sweep(at: datetime) -> set[tuple[str, str, str]]:
        await districts.sweep(at)
        return sent(smtp.take())

    assert await sweep(vn(2021, 10, 28, 8)) == {
        (email_of("562"), "warning", a),
        (email_of("562"), "warning", b),
    }
    # the first case is accepted: the accept deadline is gone, a resolve deadline comes
    moving, event = moved(
        moving,
        vn(2021, 10, 28, 9),
        status=CaseStatus.accepted,
        deadlines=[deadline("resolve", date(2021, 11, 27))],
    )
    await districts.publish(event)
    await _until_case_revision(districts, a, 2)
    assert await sweep(vn(2021, 10, 30, 8)) == {(email_of("562"), "overdue", b)}
    assert await sweep(vn(2021, 11, 2, 8)) == {(email_of(PROVINCE), "escalation", b)}
    assert await sweep(vn(2021, 11, 26, 8)) == {(email_of("562"), "warning", a)}

    moving, event = moved(
        moving, vn(2021, 11, 26, 9), "case.closed", status=CaseStatus.closed, deadlines=[]
    )
    await districts.publish(event)
    await _until_case_revision(districts, a, 3)
    assert await sweep(vn(2021, 12, 10, 8)) == set()


async def _until_case_revision(service: Service, case_id: str, revision: int) -> None:
    async def stored() -> bool:
        doc = await service.app.state.reminders.store.cases.find_one({"_id": case_id})
        return doc is not None and doc["revision"] == revision

    await eventually(stored, timeout=20)

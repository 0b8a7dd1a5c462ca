"""The workflow over HTTP: each allowed move succeeds, others are refused naming the allowed ones
(every pair of statuses is covered by the pure tests in tests/unit/cases/test_workflow.py)."""

from __future__ import annotations

from typing import Any

import httpx

from cases.domain.workflow import ALLOWED
from lhpn_shared.clock import FixedClock
from lhpn_shared.contracts.cases import CaseStatus
from tests.integration.cases.builders import Caller, make_case
from tests.support.amqp import EventListener
from tests.support.http import outbox_published
from tests.support.infra import RabbitVhost

S = CaseStatus
PATHS: dict[CaseStatus, tuple[CaseStatus, ...]] = {
    S.received: (),
    S.accepted: (S.accepted,),
    S.declined: (S.declined,),
    S.in_progress: (S.accepted, S.in_progress),
    S.resolved: (S.accepted, S.in_progress, S.resolved),
    S.referred: (S.accepted, S.in_progress, S.referred),
    S.mediation_succeeded: (S.accepted, S.in_progress, S.mediation_succeeded),
    S.mediation_failed: (S.accepted, S.in_progress, S.mediation_failed),
    S.withdrawn: (S.accepted, S.in_progress, S.withdrawn),
    S.closed: (S.accepted, S.in_progress, S.resolved, S.closed),
}


def make_transition(to: CaseStatus, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"to": to.value, "note": f"Chuyển sang {to.value}"}
    if to is S.referred:
        body["referral"] = {
            "body": "Trung tâm Trợ giúp pháp lý nhà nước tỉnh Phú Yên",
            "referred_on": "2021-03-01",
            "reference_number": "12/CV-HLHPN",
        }
    body.update(over)
    return body


async def open_at(client: httpx.AsyncClient, caller: Caller, status: CaseStatus) -> str:
    body = make_case(kind="mediation", topic="marriage_family")
    r = await client.post("/api/v1/cases", json=body, headers=caller.headers)
    assert r.status_code == 201, r.text
    for step in PATHS[status]:
        r = await move(client, caller, body["case_id"], make_transition(step))
        assert r.status_code == 200, r.text
    return str(body["case_id"])


async def move(
    client: httpx.AsyncClient, caller: Caller, case_id: str, body: dict[str, Any]
) -> httpx.Response:
    return await client.post(
        f"/api/v1/cases/{case_id}/transitions", json=body, headers=caller.headers
    )


async def test_every_allowed_transition_succeeds_over_http(
    client: httpx.AsyncClient, commune: Caller
) -> None:
    for source, targets in ALLOWED.items():
        for target in sorted(targets):
            case_id = await open_at(client, commune, source)
            r = await move(client, commune, case_id, make_transition(target))
            assert r.status_code == 200, (source, target, r.text)
            case = r.json()
            assert case["status"] == target.value
            last = case["timeline"][-1]
            assert (last["from_status"], last["to_status"]) == (source.value, target.value)
            assert last["actor"] == commune.subject
            assert case["revision"] == len(case["timeline"])


async def test_an_invalid_transition_is_refused_with_409_naming_the_allowed_ones(
    client: httpx.AsyncClient, commune: Caller
) -> None:
    case_id = await open_at(client, commune, S.received)
    r = await move(client, commune, case_id, make_transition(S.resolved))
    assert r.status_code == 409
    assert r.json()["allowed"] == ["accepted", "declined", "referred", "withdrawn"]
    detail = r.json()["detail"]
    assert "'Đã tiếp nhận' sang 'Đã giải quyết'" in detail
    assert "Được phép: " in detail and "Đã thụ lý" in detail and "Không thụ lý" in detail
    unchanged = await client.get(f"/api/v1/cases/{case_id}", headers=commune.headers)
    assert unchanged.json()["status"] == "received" and unchanged.json()["revision"] == 1


async def test_a_closed_case_is_reopened_once_and_the_timeline_keeps_every_step(
    client: httpx.AsyncClient, commune: Caller, clock: FixedClock, rabbit: RabbitVhost
) -> None:
    async with EventListener(rabbit.url) as events:
        case_id = await open_at(client, commune, S.closed)
        reopened = await move(client, commune, case_id, make_transition(S.in_progress))
        assert reopened.status_code == 200
        assert reopened.json()["timeline"][-1]["action"] == "reopened"
        await move(client, commune, case_id, make_transition(S.resolved))
        await move(client, commune, case_id, make_transition(S.closed))
        again = await move(client, commune, case_id, make_transition(S.in_progress))
        assert again.status_code == 409
        assert "mở lại một lần" in again.json()["detail"] and again.json()["allowed"] == []
        await events.wait_for(lambda b: len([e for e in b if e["type"] == "case.closed"]) == 2)
        await outbox_published(client)
        await events.flush()
    case = (await client.get(f"/api/v1/cases/{case_id}", headers=commune.headers)).json()
    assert [e["to_status"] for e in case["timeline"]] == [
        "received",
        "accepted",
        "in_progress",
        "resolved",
        "closed",
        "in_progress",
        "resolved",
        "closed",
    ]
    kinds = [(e["type"], e["data"]["revision"]) for e in events.bodies()]
    assert kinds == [
        ("case.opened", 1),
        ("case.status_changed", 2),
        ("case.status_changed", 3),
        ("case.status_changed", 4),
        ("case.status_changed", 5),
        ("case.closed", 5),
        ("case.status_changed", 6),
        ("case.status_changed", 7),
        ("case.status_changed", 8),
        ("case.closed", 8),
    ]


async def test_refused_details_are_422_naming_the_field(
    client: httpx.AsyncClient, commune: Caller, clock: FixedClock
) -> None:
    case_id = await open_at(client, commune, S.received)
    future = clock.now().replace(year=2022).isoformat()
    refusals = {
        "at": make_transition(S.accepted, at=future),
        "note": make_transition(S.declined, note=None),  # declining needs a reason
        "referral": make_transition(S.referred, referral=None),
    }
    for field, body in refusals.items():
        r = await move(client, commune, case_id, body)
        assert r.status_code == 422, (field, r.text)
        assert r.json()["detail"][0]["loc"][-1] == field, r.text
    earlier = make_transition(S.accepted, at="2021-03-01T08:00:00+07:00")  # before the opening
    r = await move(client, commune, case_id, earlier)
    assert r.status_code == 422 and "trước bước gần nhất" in r.text


async def test_a_transition_may_be_dated_in_the_past_for_paper_records(
    client: httpx.AsyncClient, commune: Caller, clock: FixedClock
) -> None:
    case_id = await open_at(client, commune, S.received)
    clock.set(clock.now().replace(day=20))
    r = await move(
        client, commune, case_id, make_transition(S.accepted, at="2021-03-08T09:00+07:00")
    )
    assert r.status_code == 200, r.text
    assert r.json()["status_at"]["accepted"] == "2021-03-08T02:00:00Z"


async def test_a_denunciation_is_extended_twice_then_refused(
    client: httpx.AsyncClient, commune: Caller
) -> None:
    body = make_case(kind="denunciation")
    await client.post("/api/v1/cases", json=body, headers=commune.headers)
    url = f"/api/v1/cases/{body['case_id']}"
    await client.post(f"{url}/transitions", json={"to": "accepted"}, headers=commune.headers)
    dues = [(await client.get(url, headers=commune.headers)).json()["deadlines"][0]["due_on"]]
    for _ in range(2):
        r = await client.post(
            f"{url}/extensions", json={"note": "Vụ việc phức tạp"}, headers=commune.headers
        )
        assert r.status_code == 200, r.text
        dues.append(r.json()["deadlines"][0]["due_on"])
    third = await client.post(f"{url}/extensions", json={}, headers=commune.headers)
    assert third.status_code == 409 and "gia hạn 2 lần" in third.json()["detail"]
    # accepted 2021-03-01: 30 days, then 60 and 90, each rolled to the next working day
    # (30/4 and 1/5 are days off, 2/5 a Sunday, 3/5 the day off in lieu; 30/5 a Sunday)
    assert dues == ["2021-03-31", "2021-05-04", "2021-05-31"]

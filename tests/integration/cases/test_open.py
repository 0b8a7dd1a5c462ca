"""Opening a case over HTTP: a retried POST is safe, other content under the same id is not."""

from __future__ import annotations

import uuid

import httpx

from lhpn_shared.clock import FixedClock
from tests.integration.cases.builders import (
    COMMUNE,
    DISTRICT,
    OTHER_COMMUNE,
    SYSTEM_HEADERS,
    Caller,
    make_case,
)
from tests.support.amqp import EventListener
from tests.support.infra import RabbitVhost


async def test_the_same_post_twice_opens_one_case_and_publishes_one_event(
    client: httpx.AsyncClient, commune: Caller, rabbit: RabbitVhost
) -> None:
    body = make_case()
    async with EventListener(rabbit.url, keys=("case.opened.v1",)) as events:
        first = await client.post("/api/v1/cases", json=body, headers=commune.headers)
        second = await client.post("/api/v1/cases", json=body, headers=commune.headers)
        assert first.status_code == 201, first.text
        assert second.status_code == 200, second.text
        assert first.json() == second.json()
        # a marker opened after both: its event comes after any event the second made
        marker = make_case()
        assert (await client.post("/api/v1/cases", json=marker, headers=commune.headers)).is_success
        await events.wait_for(lambda b: any(e["data"]["case_id"] == marker["case_id"] for e in b))
        mine = [e for e in events.bodies() if e["data"]["case_id"] == body["case_id"]]
    assert len(mine) == 1
    assert mine[0]["source"] == "cases" and mine[0]["unit_id"] == COMMUNE
    assert mine[0]["data"]["status"] == "received"
    listed = await client.get("/api/v1/cases", headers=commune.headers)
    assert sorted(c["case_id"] for c in listed.json()["items"]) == sorted(
        [body["case_id"], marker["case_id"]]
    )


async def test_a_new_case_shows_its_status_deadlines_and_allowed_moves(
    client: httpx.AsyncClient, commune: Caller
) -> None:
    body = make_case(channel="letter")
    r = await client.post("/api/v1/cases", json=body, headers=commune.headers)
    assert r.status_code == 201, r.text
    case = r.json()
    assert case["status"] == "received" and case["status_label"] == "Đã tiếp nhận"
    assert case["requester"] == body["requester"] | {
        "phone": None,
        "address": None,
        "id_number": None,
    }
    assert case["summary"] == body["summary"] and case["personal_data"] is True
    # complaint received 2021-03-01: accept within 10 days, handle the letter in 10 working days
    assert [(d["name"], d["due_on"]) for d in case["deadlines"]] == [
        ("accept", "2021-03-11"),
        ("handle_letter", "2021-03-15"),
    ]
    assert case["next_due_at"] == "2021-03-12T00:00:00+07:00"  # the first late instant
    assert case["overdue"] is False
    assert case["allowed_transitions"] == ["accepted", "declined", "referred", "withdrawn"]
    assert [e["action"] for e in case["timeline"]] == ["opened"]
    assert case["timeline"][0]["actor"] == commune.subject


async def test_the_same_case_id_with_other_content_is_a_conflict(
    client: httpx.AsyncClient, commune: Caller
) -> None:
    body = make_case()
    assert (await client.post("/api/v1/cases", json=body, headers=commune.headers)).is_success
    other = {**body, "requester": {"name": "Một người khác"}}
    r = await client.post("/api/v1/cases", json=other, headers=commune.headers)
    assert r.status_code == 409
    assert body["case_id"] in r.json()["detail"]
    assert "Một người khác" not in r.text and body["requester"]["name"] not in r.text


async def test_bad_input_is_refused_naming_the_field(
    client: httpx.AsyncClient, commune: Caller
) -> None:
    cases = {
        "unit_id": make_case(unit_id="00000"),
        "received_on": make_case(received_on="2021-03-02"),  # the clock says 2021-03-01
        "flags": make_case(flags=["Nguyen Van A"]),
        "phone": make_case(requester={"phone": "call me"}),
    }
    for field, body in cases.items():
        r = await client.post("/api/v1/cases", json=body, headers=commune.headers)
        assert r.status_code == 422, (field, r.text)
        assert field in str(r.json()["detail"]), (field, r.text)
    assert "call me" not in r.text  # a refused value is not echoed


async def test_staff_open_cases_only_within_their_unit_and_viewers_not_at_all(
    client: httpx.AsyncClient, commune: Caller, viewer: Caller, admin: Caller
) -> None:
    for caller, unit in [(commune, OTHER_COMMUNE), (commune, DISTRICT), (viewer, COMMUNE)]:
        r = await client.post("/api/v1/cases", json=make_case(unit_id=unit), headers=caller.headers)
        assert r.status_code == 403, (caller.role, unit, r.text)
    r = await client.post("/api/v1/cases", json=make_case(), headers=admin.headers)
    assert r.status_code == 403
    missing = await client.get(f"/api/v1/cases/{uuid.uuid4()}", headers=commune.headers)
    assert missing.status_code == 404
    anonymous = await client.get("/api/v1/cases")
    assert anonymous.status_code == 401


async def test_a_system_opens_cases_without_personal_data_and_reads_them_without_it(
    client: httpx.AsyncClient, commune: Caller
) -> None:
    with_data = make_case()
    refused = await client.post("/api/v1/cases", json=with_data, headers=SYSTEM_HEADERS)
    assert refused.status_code == 403
    body = make_case(summary="", requester=None)
    r = await client.post("/api/v1/cases", json=body, headers=SYSTEM_HEADERS)
    assert r.status_code == 201, r.text
    assert r.json()["personal_data"] is False
    assert r.json()["timeline"][0]["actor"] == "system:hotline"
    assert r.json()["personal_data_notice"].startswith("Thông tin cá nhân được ẩn")
    got = await client.get(f"/api/v1/cases/{body['case_id']}", headers=SYSTEM_HEADERS)
    assert got.status_code == 200 and got.json()["personal_data"] is False
    moved = await client.post(
        f"/api/v1/cases/{body['case_id']}/transitions",
        json={"to": "accepted"},
        headers=SYSTEM_HEADERS,
    )
    assert moved.status_code == 403
    listed = await client.get("/api/v1/cases", headers=SYSTEM_HEADERS)
    assert [c["case_id"] for c in listed.json()["items"]] == [body["case_id"]]
    staff = await client.get(f"/api/v1/cases/{body['case_id']}", headers=commune.headers)
    assert staff.status_code == 200 and staff.json()["requester"] is None


async def test_paging_walks_every_case_once_newest_first(
    client: httpx.AsyncClient, commune: Caller, clock: FixedClock
) -> None:
    days = ["2021-02-20", "2021-02-25", "2021-02-25", "2021-02-27", "2021-03-01"]
    opened = []
    for day in days:
        body = make_case(received_on=day, kind="consultation")
        assert (await client.post("/api/v1/cases", json=body, headers=commune.headers)).is_success
        opened.append((day, body["case_id"]))
    seen: list[tuple[str, str]] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/cases", params=params, headers=commune.headers)).json()
        seen += [(c["received_on"], c["case_id"]) for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(opened, key=lambda p: (-int(p[0].replace("-", "")), p[1]))
    window = await client.get(
        "/api/v1/cases",
        params={"received_from": "2021-02-25", "received_to": "2021-02-27"},
        headers=commune.headers,
    )
    assert len(window.json()["items"]) == 3

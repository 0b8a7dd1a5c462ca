"""Deadlines over HTTP: the complaint example, and `overdue` as of the clock at read time."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx

from lhpn_shared.clock import LOCAL_TZ, FixedClock
from tests.integration.cases.builders import Caller, make_case


def local(day: str, hour: int = 9) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=LOCAL_TZ)


async def open_case(client: httpx.AsyncClient, caller: Caller, **over: object) -> str:
    body = make_case(**over)
    r = await client.post("/api/v1/cases", json=body, headers=caller.headers)
    assert r.status_code == 201, r.text
    return str(body["case_id"])


async def accept(client: httpx.AsyncClient, caller: Caller, case_id: str) -> None:
    r = await client.post(
        f"/api/v1/cases/{case_id}/transitions", json={"to": "accepted"}, headers=caller.headers
    )
    assert r.status_code == 200, r.text


async def test_a_complaint_accepted_on_8_march_is_due_on_7_april_or_22_april_when_complex(
    client: httpx.AsyncClient, commune: Caller, clock: FixedClock
) -> None:
    clock.set(local("2021-03-01"))
    plain = await open_case(client, commune, received_on="2021-03-01")
    complex_ = await open_case(client, commune, received_on="2021-03-01", complex=True)
    clock.set(local("2021-03-08"))
    for case_id in (plain, complex_):
        await accept(client, commune, case_id)

    for case_id, due_on in [(plain, "2021-04-07"), (complex_, "2021-04-22")]:
        case = (await client.get(f"/api/v1/cases/{case_id}", headers=commune.headers)).json()
        assert case["status"] == "accepted"
        assert [(d["name"], d["due_on"]) for d in case["deadlines"]] == [("resolve", due_on)]
        day_after = (datetime.fromisoformat(due_on) + timedelta(days=1)).date().isoformat()
        assert case["next_due_at"] == f"{day_after}T00:00:00+07:00"
        assert case["overdue"] is False


async def test_overdue_true_lists_exactly_the_cases_past_a_deadline_as_of_now(
    client: httpx.AsyncClient, commune: Caller, clock: FixedClock
) -> None:
    clock.set(local("2021-02-01"))
    not_accepted = await open_case(client, commune, received_on="2021-02-01")  # accept by 17/2
    accepted = await open_case(client, commune, received_on="2021-02-01")
    clock.set(local("2021-02-05"))
    await accept(client, commune, accepted)  # resolve by 08/3 (07/3 is a Sunday)
    clock.set(local("2021-03-01"))
    fresh = await open_case(client, commune, received_on="2021-03-01")  # accept by 11/3
    no_deadline = await open_case(client, commune, kind="consultation", received_on="2021-03-01")

    async def listed(**params: str) -> set[str]:
        r = await client.get("/api/v1/cases", params=params, headers=commune.headers)
        assert r.status_code == 200, r.text
        return {c["case_id"] for c in r.json()["items"]}

    async def overdue_on_get(case_id: str) -> bool:
        r = await client.get(f"/api/v1/cases/{case_id}", headers=commune.headers)
        return bool(r.json()["overdue"])

    clock.set(local("2021-03-08", hour=23))  # the last hour on time for `accepted`
    assert await listed(overdue="true") == {not_accepted}
    assert await listed(overdue="false") == {accepted, fresh, no_deadline}

    clock.set(local("2021-03-09", hour=0))  # from 00:00 the day after the last day: late
    assert await listed(overdue="true") == {not_accepted, accepted}
    assert await overdue_on_get(accepted) is True
    assert await overdue_on_get(fresh) is False

    clock.set(local("2021-03-20"))
    assert await listed(overdue="true") == {not_accepted, accepted, fresh}
    assert await listed(overdue="false") == {no_deadline}
    items = (await client.get("/api/v1/cases", headers=commune.headers)).json()["items"]
    assert {c["case_id"] for c in items if c["overdue"]} == {not_accepted, accepted, fresh}
    assert await listed(overdue="true", kind="consultation") == set()

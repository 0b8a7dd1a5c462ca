"""Every SPEC §4 rule is refused with a 422 that names the field."""

from __future__ import annotations

from datetime import date

import httpx
import pytest

from lhpn_shared.contracts.units import Unit
from tests.integration.intake.test_activities import make_activity


def refused_fields(response: httpx.Response) -> set[str]:
    assert response.status_code == 422, response.text
    return {".".join(str(p) for p in d["loc"][1:]) for d in response.json()["detail"]}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"unit_id": "99999"}, "unit_id"),
        ({"kind": "gardening"}, "kind"),
        ({"metrics": {"sessions": -1, "participants": 3}}, "metrics.sessions"),
        (
            {"metrics": {"participants": 10, "female_participants": 11}},
            "metrics.female_participants",
        ),
        ({"occurred_on": "2999-01-01"}, "occurred_on"),
        (
            {
                "kind": "supervision",
                "metrics": {"recommendations": 2, "recommendations_accepted": 3},
            },
            "metrics.recommendations_accepted",
        ),
        (
            {"kind": "draft_comment", "metrics": {"comments": 1, "comments_accepted": 2}},
            "metrics.comments_accepted",
        ),
        ({"metrics": {"bogus": 1}}, "metrics.bogus"),
        ({"occurred_on": "not-a-date"}, "occurred_on"),
    ],
)
async def test_a_bad_activity_is_refused_naming_the_field(
    client: httpx.AsyncClient, admin: dict[str, str], change: dict[str, object], field: str
) -> None:
    r = await client.post("/api/v1/activities", json=make_activity(**change), headers=admin)
    assert field in refused_fields(r)
    assert isinstance(r.json()["detail"][0]["msg"], str)


async def test_an_activity_outside_the_units_validity_is_refused(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    merged = Unit(
        unit_id="22999",
        name="Xã Sáp Nhập",
        kind="xã",
        level="commune",
        parent_id="555",
        valid_from=date(2010, 1, 1),
        valid_to=date(2021, 6, 30),
    )
    await client._transport.app.state.intake.upsert_unit(merged)  # type: ignore[attr-defined]
    ok = await client.post(
        "/api/v1/activities",
        json=make_activity(unit_id="22999", occurred_on="2021-06-30"),
        headers=admin,
    )
    assert ok.status_code == 201, ok.text
    late = await client.post(
        "/api/v1/activities",
        json=make_activity(unit_id="22999", occurred_on="2021-07-01"),
        headers=admin,
    )
    assert "occurred_on" in refused_fields(late)
    assert "Xã Sáp Nhập" in late.json()["detail"][0]["msg"]


async def test_bad_input_never_gets_a_500(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    for body in ([], {"unit_id": None}, {"metrics": "x"}, "plain text"):
        r = await client.post("/api/v1/activities", json=body, headers=admin)
        assert r.status_code == 422, r.text


async def test_staff_cannot_write_for_another_district(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    from tests.support.http import login

    r = await client.post(
        "/api/v1/users",
        json={
            "username": "tuyhoa",
            "password": "matkhau-123",
            "role": "district_staff",
            "unit_id": "555",
        },
        headers=admin,
    )
    assert r.status_code == 201, r.text
    staff = await login(client, "tuyhoa", "matkhau-123")
    own = await client.post(
        "/api/v1/activities", json=make_activity(unit_id="22015"), headers=staff
    )
    assert own.status_code == 201, own.text
    other = await client.post(
        "/api/v1/activities", json=make_activity(unit_id="557"), headers=staff
    )
    assert other.status_code == 403
    anonymous = await client.post("/api/v1/activities", json=make_activity())
    assert anonymous.status_code == 401


async def test_a_correction_makes_a_new_revision_and_a_void_another(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    body = make_activity()
    created = (await client.post("/api/v1/activities", json=body, headers=admin)).json()
    fields = {k: v for k, v in body.items() if k != "activity_id"}
    fields["metrics"] = {"sessions": 3, "participants": 90, "female_participants": 70}
    corrected = await client.put(
        f"/api/v1/activities/{created['activity_id']}", json=fields, headers=admin
    )
    assert corrected.status_code == 200, corrected.text
    assert corrected.json()["revision"] == 2
    voided = await client.delete(f"/api/v1/activities/{created['activity_id']}", headers=admin)
    assert voided.json()["revision"] == 3 and voided.json()["voided"] is True
    listed = await client.get("/api/v1/activities", params={"unit_id": "22015"}, headers=admin)
    assert created["activity_id"] not in [a["activity_id"] for a in listed.json()["items"]]


@pytest.mark.parametrize("value", ["3.37e-273", "0", "1625097600", "2021-7-1", "01/07/2021"])
@pytest.mark.parametrize("parameter", ["from_on", "to_on"])
async def test_a_day_in_a_query_must_be_written_as_an_iso_date(
    client: httpx.AsyncClient, admin: dict[str, str], parameter: str, value: str
) -> None:
    # pydantic alone reads a number as a Unix time: 3.37e-273 was 1 January 1970, answered 200
    r = await client.get("/api/v1/activities", params={parameter: value}, headers=admin)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["query", parameter]
    ok = await client.get("/api/v1/activities", params={parameter: "2021-07-01"}, headers=admin)
    assert ok.status_code == 200, ok.text

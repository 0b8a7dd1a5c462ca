"""Cases across a merge of their commune, and cases entered after the fact."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import httpx

from cases.settings import CasesSettings
from lhpn_shared.auth import Role
from lhpn_shared.clock import LOCAL_TZ, FixedClock
from lhpn_shared.contracts.units import LineageChange, Unit, UnitLink
from tests.integration.cases.builders import (
    COMMUNE,
    OTHER_DISTRICT,
    UNITS,
    Caller,
    make_case,
    unit_event,
)
from tests.support.amqp import publish_raw
from tests.support.http import eventually
from tests.support.infra import RabbitVhost

APRIL = date(2021, 4, 1)


async def merge_commune_into_other_district(
    client: httpx.AsyncClient, rabbit: RabbitVhost, clock: FixedClock
) -> str:
    """COMMUNE (of district 555) ends on 31/03; its successor NEW is under district 557."""
    old = next(u for u in UNITS if u.unit_id == COMMUNE)
    closed = old.model_copy(
        update={
            "valid_to": APRIL - timedelta(days=1),
            "successors": [UnitLink(unit_id="NEW", on=APRIL, change=LineageChange.MERGE)],
            "revision": 2,
        }
    )
    new = Unit(
        unit_id="NEW",
        name="Phường Mới",
        kind="phường",
        level="commune",
        parent_id=OTHER_DISTRICT,
        valid_from=APRIL,
        predecessors=[UnitLink(unit_id=COMMUNE, on=APRIL, change=LineageChange.MERGE)],
    )
    for unit in (new, closed):
        event_id, body = unit_event(unit, clock)
        intake = rabbit.url_for("intake")  # the owner of unit.upserted
        await publish_raw(intake, "lhpn.events", "unit.upserted.v1", body, event_id)

    async def seen() -> bool:
        tree = await client._transport.app.state.cases.tree()  # type: ignore[attr-defined]
        return "NEW" in tree and tree.units[COMMUNE].valid_to is not None

    await eventually(seen, timeout=5)
    return "NEW"


async def test_a_merged_communes_case_is_handled_by_its_successor_from_the_effective_day(
    client: httpx.AsyncClient,
    settings: CasesSettings,
    rabbit: RabbitVhost,
    clock: FixedClock,
    commune: Caller,
    district: Caller,
    other_district: Caller,
) -> None:
    body = make_case(received_on="2021-03-01")
    r = await client.post("/api/v1/cases", json=body, headers=commune.headers)
    assert r.status_code == 201, r.text
    case_id = body["case_id"]
    # before the merge: the commune and its district handle it, the other district does not
    other = other_district
    assert (await client.get(f"/api/v1/cases/{case_id}", headers=district.headers)).is_success
    assert (await client.get(f"/api/v1/cases/{case_id}", headers=other.headers)).status_code == 403

    new_id = await merge_commune_into_other_district(client, rabbit, clock)
    clock.set(datetime(2021, 4, 2, 9, 0, tzinfo=LOCAL_TZ))
    successor = Caller(settings, clock, Role.commune_staff, new_id)

    # from 1 April: the successor holds it — sees it and acts on it; the district above the
    # successor sees the facts, as for any case of its communes not referred up to it
    r = await client.get(f"/api/v1/cases/{case_id}", headers=successor.headers)
    assert r.status_code == 200, r.text
    assert r.json()["requester"] is not None and r.json()["unit_id"] == COMMUNE
    r = await client.get(f"/api/v1/cases/{case_id}", headers=other.headers)
    assert r.status_code == 200 and r.json()["personal_data"] is False
    r = await client.post(
        f"/api/v1/cases/{case_id}/transitions", json={"to": "accepted"}, headers=successor.headers
    )
    assert r.status_code == 200, r.text
    listed = await client.get(
        "/api/v1/cases", params={"unit_id": new_id}, headers=successor.headers
    )
    assert case_id in {c["case_id"] for c in listed.json()["items"]}

    # the closed commune's staff and its former district keep the facts only
    for former in (commune, district):
        r = await client.get(f"/api/v1/cases/{case_id}", headers=former.headers)
        assert r.status_code == 200, r.text
        assert r.json()["personal_data"] is False and r.json()["requester"] is None
        assert "Phường Mới" in r.json()["personal_data_notice"]
        listed = await client.get("/api/v1/cases", headers=former.headers)
        assert listed.status_code == 200, listed.text
        item = next(c for c in listed.json()["items"] if c["case_id"] == case_id)
        assert "requester" not in item and item["status"] == "accepted"
        move = {"to": "in_progress"}
        r = await client.post(
            f"/api/v1/cases/{case_id}/transitions", json=move, headers=former.headers
        )
        assert r.status_code == 403

    # a case received after the commune closed cannot be its case
    late = await client.post(
        "/api/v1/cases",
        json=make_case(unit_id=COMMUNE, received_on="2021-04-02"),
        headers=successor.headers,
    )
    assert late.status_code == 422
    assert "received_on" in str(late.json()["detail"])


async def test_a_letter_entered_a_month_late_keeps_its_real_dates_and_deadlines(
    client: httpx.AsyncClient, clock: FixedClock, commune: Caller
) -> None:
    """Recorded on 1 March: a complaint received on 1 February, accepted on 3 February."""
    body = make_case(received_on="2021-02-01", channel="letter")
    r = await client.post("/api/v1/cases", json=body, headers=commune.headers)
    assert r.status_code == 201, r.text
    opened = r.json()["timeline"][0]["at"]
    assert datetime.fromisoformat(opened) == datetime(2021, 2, 1, tzinfo=LOCAL_TZ)

    url = f"/api/v1/cases/{body['case_id']}/transitions"
    before_receipt = {"to": "accepted", "at": "2021-01-31T09:00:00+07:00"}
    r = await client.post(url, json=before_receipt, headers=commune.headers)
    assert r.status_code == 422, r.text
    r = await client.post(
        url, json={"to": "accepted", "at": "2021-02-03T09:00:00+07:00"}, headers=commune.headers
    )
    assert r.status_code == 200, r.text
    case = r.json()
    # complaint: resolve within 30 days of acceptance (SPEC §6): counted from 3 February (the
    # same rule gives 7 April for an acceptance on 8 March), not from the day it was entered
    assert [(d["name"], d["due_on"]) for d in case["deadlines"]] == [("resolve", "2021-03-05")]
    assert case["overdue"] is False  # 1 March: not yet
    out_of_order = {"to": "in_progress", "at": "2021-02-02T09:00:00+07:00"}
    r = await client.post(url, json=out_of_order, headers=commune.headers)
    assert r.status_code == 422, r.text
    future = {"to": "in_progress", "at": "2021-03-02T09:00:00+07:00"}
    assert (await client.post(url, json=future, headers=commune.headers)).status_code == 422
    r = await client.post(
        url, json={"to": "in_progress", "at": "2021-02-10T14:00:00+07:00"}, headers=commune.headers
    )
    assert r.status_code == 200, r.text
    instants = [datetime.fromisoformat(e["at"]) for e in r.json()["timeline"]]
    assert instants == sorted(instants)

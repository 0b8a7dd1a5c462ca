"""The versioned unit tree through intake's API: the tree of a day, lineage, admins' changes
(create, rename, merge, split, close) all or nothing, and what refuses them."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from intake.app import create_app
from intake.settings import IntakeSettings
from intake.units import UnitRegistry
from tests.support.amqp import EventListener
from tests.support.http import eventually, login, running
from tests.support.infra import RabbitVhost

JULY = "2025-07-01"


def commune(unit_id: str, parent: str = "555", name: str | None = None) -> dict[str, Any]:
    return {
        "unit_id": unit_id,
        "name": name or f"Phường {unit_id}",
        "kind": "phường",
        "level": "commune",
        "parent_id": parent,
    }


async def ids_as_of(client: httpx.AsyncClient, admin: dict[str, str], day: str) -> set[str]:
    r = await client.get("/api/v1/units", params={"as_of": day, "limit": 5000}, headers=admin)
    assert r.status_code == 200, r.text
    return {u["unit_id"] for u in r.json()["items"]}


async def test_a_merge_closes_the_merged_units_opens_the_new_one_and_links_both_sides(
    client: httpx.AsyncClient, admin: dict[str, str], rabbit: RabbitVhost
) -> None:
    new = commune("N1@2025", parent="54", name="Phường Tuy Hòa")
    async with EventListener(rabbit.url, keys=("unit.upserted.v1",)) as events:
        r = await client.post(
            "/api/v1/units/merge",
            json={
                "effective_on": JULY,
                "unit_ids": ["22015", "22018"],
                "new_unit": new,
                "title": "Nghị quyết thử",
            },
            headers=admin,
        )
        assert r.status_code == 201, r.text
        assert sorted(r.json()["unit_ids"]) == ["22015", "22018", "N1@2025"]
        bodies = await events.wait_for(
            lambda b: {e["data"]["unit_id"] for e in b} >= {"22015", "22018", "N1@2025"}
        )
    by_id = {e["data"]["unit_id"]: e["data"] for e in bodies}
    assert by_id["22015"]["valid_to"] == "2025-06-30"
    assert by_id["22015"]["successors"] == [{"unit_id": "N1@2025", "on": JULY, "change": "merge"}]
    assert by_id["N1@2025"]["valid_from"] == JULY
    assert sorted(p["unit_id"] for p in by_id["N1@2025"]["predecessors"]) == ["22015", "22018"]

    before = await ids_as_of(client, admin, "2025-06-30")
    after = await ids_as_of(client, admin, JULY)
    assert {"22015", "22018"} <= before and "N1@2025" not in before
    assert "N1@2025" in after and not ({"22015", "22018"} & after)

    lineage = (await client.get("/api/v1/units/22015/lineage", headers=admin)).json()
    assert [(s["unit_id"], s["on"], s["change"]) for s in lineage["successors"]] == [
        ("N1@2025", JULY, "merge")
    ]


async def test_a_split_and_a_later_merge_show_in_the_lineage_transitively(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    r = await client.post(
        "/api/v1/units/22024/split",
        json={"effective_on": "2024-01-01", "new_units": [commune("S1"), commune("S2")]},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/api/v1/units/merge",
        json={"effective_on": JULY, "unit_ids": ["S1", "22030"], "new_unit": commune("M1", "54")},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    lineage = (await client.get("/api/v1/units/22024/lineage", headers=admin)).json()
    steps = [(s["via"], s["unit_id"], s["change"]) for s in lineage["successors"]]
    assert steps == [("22024", "S1", "split"), ("22024", "S2", "split"), ("S1", "M1", "merge")]
    back = (await client.get("/api/v1/units/M1/lineage", headers=admin)).json()
    assert {s["unit_id"] for s in back["predecessors"]} == {"S1", "22030", "22024"}


async def test_a_rename_keeps_the_unit_and_the_tree_of_an_earlier_day_shows_the_former_name(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    r = await client.post(
        "/api/v1/units/22033/rename",
        json={"effective_on": "2024-08-01", "name": "Phường Năm Mới"},
        headers=admin,
    )
    assert r.status_code == 201, r.text

    async def name_on(day: str) -> str:
        r = await client.get(
            "/api/v1/units", params={"as_of": day, "unit_id": "555"}, headers=admin
        )
        return next(u["name"] for u in r.json()["items"] if u["unit_id"] == "22033")

    assert await name_on("2024-07-31") == "Phường 5"
    assert await name_on("2024-08-01") == "Phường Năm Mới"


async def test_the_same_reorganisation_sent_twice_is_applied_once(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    body = {
        "reorganisation_id": f"nq-{uuid.uuid4()}",
        "effective_on": JULY,
        "create": [commune("R1@2025", "54")],
        "close": ["22036"],
        "successions": [{"predecessor_id": "22036", "successor_id": "R1@2025"}],
    }
    first = await client.post("/api/v1/reorganisations", json=body, headers=admin)
    again = await client.post("/api/v1/reorganisations", json=body, headers=admin)
    assert (first.status_code, again.status_code) == (201, 200), again.text
    assert first.json() == again.json()
    unit = (await client.get("/api/v1/units/R1@2025", headers=admin)).json()
    assert unit["revision"] == 1
    other = await client.post(
        "/api/v1/reorganisations", json={**body, "title": "khác"}, headers=admin
    )
    assert other.status_code == 409
    assert body["reorganisation_id"] in other.json()["detail"]

    async def audited() -> list[dict[str, Any]] | None:
        r = await client.get("/api/v1/audit", params={"limit": 200}, headers=admin)
        assert r.status_code == 200, r.text
        found = [i for i in r.json()["items"] if i["entity_id"] == body["reorganisation_id"]]
        return found or None

    # the relay moves its audit record from the change record to the log (that it is written
    # there: test_audit_inside_the_write.py); no unit named, since it changed two (R1@2025
    # opened, 22036 closed)
    (record,) = await eventually(audited)
    assert (record["action"], record["entity_type"], record["unit_id"]) == (
        "units.change",
        "reorganisation",
        None,
    )


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        # the unit id is taken
        ("/api/v1/units", {**commune("22015"), "effective_on": JULY}, 409, "đã được dùng"),
        # a parent that does not exist
        ("/api/v1/units", {**commune("X9", "nowhere"), "effective_on": JULY}, 422, "cấp trên"),
        # a commune cannot be the parent of a district
        (
            "/api/v1/units",
            {**commune("X8", "22015"), "level": "district", "effective_on": JULY},
            422,
            "cấp trên",
        ),
        # a district cannot close while its communes go on
        ("/api/v1/units/555/close", {"effective_on": JULY}, 409, "trực thuộc"),
        # a unit that does not exist yet on the eve cannot close
        (
            "/api/v1/units/merge",
            {"effective_on": "2020-01-01", "unit_ids": ["Q1"], "into_unit_id": "22015"},
            422,
            "Q1",
        ),
    ],
)
async def test_a_change_that_contradicts_the_tree_is_refused_with_a_reason(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    path: str,
    body: dict[str, Any],
    status: int,
    words: str,
) -> None:
    r = await client.post(path, json=body, headers=admin)
    assert r.status_code == status, r.text
    assert words in str(r.json()["detail"])


async def test_a_succession_that_makes_a_loop_is_refused(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    r = await client.post(
        "/api/v1/units/merge",
        json={"effective_on": "2023-01-01", "unit_ids": ["22040"], "into_unit_id": "22041"},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    # 22040 is gone; 22041 cannot now hand itself back to a unit it continues
    r = await client.post(
        "/api/v1/reorganisations",
        json={
            "effective_on": JULY,
            "successions": [{"predecessor_id": "22041", "successor_id": "22040"}],
        },
        headers=admin,
    )
    assert r.status_code in (409, 422), r.text


async def test_a_unit_with_activities_after_the_day_cannot_close_from_that_day(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    from tests.integration.intake.test_activities import make_activity

    r = await client.post(
        "/api/v1/activities",
        json=make_activity(unit_id="22042", occurred_on="2024-03-05"),
        headers=admin,
    )
    assert r.status_code == 201, r.text
    refused = await client.post(
        "/api/v1/units/22042/close", json={"effective_on": "2024-03-01"}, headers=admin
    )
    assert refused.status_code == 409, refused.text
    assert "hoạt động" in refused.json()["detail"]
    ok = await client.post(
        "/api/v1/units/22042/close", json={"effective_on": "2024-03-06"}, headers=admin
    )
    assert ok.status_code == 201, ok.text


async def test_only_admins_change_units(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    r = await client.post(
        "/api/v1/users",
        json={
            "username": "tinh",
            "password": "matkhau-123",
            "role": "province_staff",
            "unit_id": "54",
        },
        headers=admin,
    )
    assert r.status_code == 201, r.text
    staff = await login(client, "tinh", "matkhau-123")
    r = await client.post("/api/v1/units/22045/close", json={"effective_on": JULY}, headers=staff)
    assert r.status_code == 403


async def test_a_change_interrupted_after_its_commit_is_finished_at_the_next_start(
    settings: IntakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash between the change document's insert and the unit writes: the next start
    applies it whole; its events were in the document's outbox all along."""
    real_apply = UnitRegistry._apply

    async def crash(self: UnitRegistry, doc: dict[str, Any]) -> None:
        raise RuntimeError("process killed")

    body = {
        "effective_on": JULY,
        "unit_ids": ["22081", "22084"],
        "new_unit": commune("C1@2025", "54"),
    }
    async with running(create_app(settings)) as client:
        await eventually(lambda: _ready(client), timeout=30)
        admin = await login(client, "admin", "admin")
        monkeypatch.setattr(UnitRegistry, "_apply", crash)
        with pytest.raises(RuntimeError):
            await client.post("/api/v1/units/merge", json=body, headers=admin)
        monkeypatch.setattr(UnitRegistry, "_apply", real_apply)
    async with running(create_app(settings)) as client:
        await eventually(lambda: _ready(client), timeout=30)
        admin = await login(client, "admin", "admin")
        after = await ids_as_of(client, admin, JULY)
        assert "C1@2025" in after and not ({"22081", "22084"} & after)
        old = (await client.get("/api/v1/units/22081", headers=admin)).json()
        assert old["valid_to"] == "2025-06-30"


async def _ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/readyz")).status_code == 200


def plan_2025(issuer: str = "54") -> dict[str, Any]:
    return {
        "plan_id": f"P2025-{uuid.uuid4().hex[:6]}",
        "year": 2025,
        "number": "1/KH",
        "issuing_unit_id": issuer,
        "title": "Kế hoạch 2025",
        "report_schedules": [
            {
                "report_type": "monthly",
                "title": "Báo cáo tháng",
                "levels": ["commune"],
                "periods": [
                    {
                        "period": f"2025-{m:02d}",
                        "window_start_on": f"2025-{m - 1:02d}-15",
                        "window_end_on": f"2025-{m:02d}-14",
                        "due_at": {"commune": f"2025-{m:02d}-16T00:00:00+07:00"},
                    }
                    for m in (6, 7)
                ],
            }
        ],
    }


async def test_records_follow_the_unit_valid_on_their_date_and_a_closed_unit_owes_nothing_after(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    assert (await client.post("/api/v1/plans", json=plan_2025(), headers=admin)).status_code == 201
    r = await client.post(
        "/api/v1/units/merge",
        json={
            "effective_on": JULY,
            "unit_ids": ["22015", "22018"],
            "new_unit": commune("TH@2025", parent="54", name="Phường Tuy Hòa"),
        },
        headers=admin,
    )
    assert r.status_code == 201, r.text

    async def report(unit_id: str, period: str) -> httpx.Response:
        body = {"unit_id": unit_id, "report_type": "monthly", "period": period}
        return await client.post("/api/v1/reports", json=body, headers=admin)

    june_by_old = await report("22015", "2025-06")  # entered after it closed: still its own
    assert june_by_old.status_code == 201, june_by_old.text
    july_by_old = await report("22015", "2025-07")
    assert july_by_old.status_code == 422 and "không phải nộp" in july_by_old.text
    assert (await report("TH@2025", "2025-07")).status_code == 201
    assert (await report("TH@2025", "2025-06")).status_code == 422
    stored = await client.get(f"/api/v1/reports/{june_by_old.json()['report_id']}", headers=admin)
    assert stored.json()["unit_id"] == "22015"

    from tests.integration.intake.test_activities import make_activity

    for unit_id, day in (("22015", "2025-07-02"), ("TH@2025", "2025-06-30")):
        r = await client.post(
            "/api/v1/activities",
            json=make_activity(unit_id=unit_id, occurred_on=day),
            headers=admin,
        )
        assert r.status_code == 422 and "occurred_on" in r.text, r.text


async def test_a_plan_covers_its_own_province_only(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    r = await client.post(
        "/api/v1/units",
        json={
            "unit_id": "66",
            "name": "Tỉnh Đắk Lắk",
            "kind": "tỉnh",
            "level": "province",
            "parent_id": "VN",
            "effective_on": "2020-01-01",
        },
        headers=admin,
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/api/v1/units",
        json={**commune("24121", parent="66"), "effective_on": "2020-01-01"},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    assert (await client.post("/api/v1/plans", json=plan_2025(), headers=admin)).status_code == 201
    body = {"unit_id": "24121", "report_type": "monthly", "period": "2025-06"}
    r = await client.post("/api/v1/reports", json=body, headers=admin)
    assert r.status_code == 422, r.text

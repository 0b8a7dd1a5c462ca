from __future__ import annotations

import httpx


def thematic(unit_id: str = "555", **over: object) -> dict[str, object]:
    body: dict[str, object] = {
        "unit_id": unit_id,
        "report_type": "thematic_annual",
        "period": "2021",
        "indicators": {"supervision.count": 2, "legal_outreach.participants": 300},
        "narrative": "Báo cáo hoạt động chuyên đề năm 2021 của Hội LHPN thành phố Tuy Hòa.",
    }
    body.update(over)
    return body


async def test_a_thematic_report_before_30_october_is_on_time_and_one_at_midnight_is_late(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    before = await client.post(
        "/api/v1/reports",
        json=thematic("555", received_at="2021-10-29T23:59:00+07:00"),
        headers=admin,
    )
    at_due = await client.post(
        "/api/v1/reports",
        json=thematic("557", received_at="2021-10-30T00:00:00+07:00"),
        headers=admin,
    )
    assert before.status_code == 201, before.text
    assert before.json()["on_time"] is True
    assert at_due.json()["on_time"] is False
    assert at_due.json()["due_at"].startswith("2021-10-29T17:00:00")


async def test_a_resubmission_keeps_the_first_received_at_and_increments_the_revision(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    first = await client.post(
        "/api/v1/reports", json=thematic(received_at="2021-10-28T10:00:00+07:00"), headers=admin
    )
    again = await client.post(
        "/api/v1/reports",
        json=thematic(indicators={"supervision.count": 3}, narrative="Bổ sung số liệu."),
        headers=admin,
    )
    assert again.status_code == 200, again.text
    assert again.json()["report_id"] == first.json()["report_id"]
    assert again.json()["revision"] == 2
    assert again.json()["received_at"] == first.json()["received_at"]
    assert again.json()["on_time"] is True
    assert again.json()["indicators"] == {"supervision.count": 3}
    same = await client.post(
        "/api/v1/reports",
        json=thematic(indicators={"supervision.count": 3}, narrative="Bổ sung số liệu."),
        headers=admin,
    )
    assert same.json()["revision"] == 2


async def test_a_report_the_schedule_does_not_expect_is_refused_with_a_reason(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    commune = await client.post(
        "/api/v1/reports",
        json=thematic("22015", received_at="2021-10-01T00:00:00+07:00"),
        headers=admin,
    )
    assert commune.status_code == 422
    assert "unit_id" in commune.json()["detail"][0]["loc"]
    period = await client.post("/api/v1/reports", json=thematic(period="2022"), headers=admin)
    assert period.status_code == 422 and "period" in period.json()["detail"][0]["loc"]
    kind = await client.post("/api/v1/reports", json=thematic(report_type="weekly"), headers=admin)
    assert kind.status_code == 422 and "report_type" in kind.json()["detail"][0]["loc"]
    indicator = await client.post(
        "/api/v1/reports", json=thematic(indicators={"made_up.count": 1}), headers=admin
    )
    assert indicator.status_code == 422
    negative = await client.post(
        "/api/v1/reports", json=thematic(indicators={"supervision.count": -1}), headers=admin
    )
    assert negative.status_code == 422


async def test_a_received_at_in_the_future_is_refused(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    r = await client.post(
        "/api/v1/reports", json=thematic(received_at="2999-01-01T00:00:00+07:00"), headers=admin
    )
    assert r.status_code == 422
    assert "received_at" in r.json()["detail"][0]["loc"]


async def test_monthly_reports_are_due_before_the_16th_for_communes_and_the_18th_for_districts(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    commune = await client.post(
        "/api/v1/reports",
        json={
            "unit_id": "22015",
            "report_type": "monthly",
            "period": "2021-03",
            "received_at": "2021-03-15T20:00:00+07:00",
        },
        headers=admin,
    )
    district = await client.post(
        "/api/v1/reports",
        json={
            "unit_id": "555",
            "report_type": "monthly",
            "period": "2021-03",
            "received_at": "2021-03-17T20:00:00+07:00",
        },
        headers=admin,
    )
    assert commune.json()["on_time"] and district.json()["on_time"]
    assert commune.json()["due_at"].startswith("2021-03-15T17:00:00")
    assert district.json()["due_at"].startswith("2021-03-17T17:00:00")


async def test_reports_are_listed_by_subtree_a_page_at_a_time(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    for unit_id in ("555", "557", "558"):
        r = await client.post("/api/v1/reports", json=thematic(unit_id), headers=admin)
        assert r.status_code == 201, r.text
    first = await client.get("/api/v1/reports", params={"unit_id": "54", "limit": 2}, headers=admin)
    assert len(first.json()["items"]) == 2 and first.json()["next_cursor"]
    rest = await client.get(
        "/api/v1/reports",
        params={"unit_id": "54", "limit": 2, "cursor": first.json()["next_cursor"]},
        headers=admin,
    )
    units = {r["unit_id"] for r in first.json()["items"] + rest.json()["items"]}
    assert units == {"555", "557", "558"} and rest.json()["next_cursor"] is None
    only = await client.get("/api/v1/reports", params={"unit_id": "557"}, headers=admin)
    assert [r["unit_id"] for r in only.json()["items"]] == ["557"]


async def test_resubmissions_from_another_system_handled_at_once_are_each_applied(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    """Another system's resubmissions, handled together (a consumer takes several messages at
    once), used to race: the loser's write, guarded on the revision it read, was refused as
    'resubmitted by someone else' and dead-lettered. Each is applied over what is stored."""
    import asyncio

    from tests.integration.intake.test_inbound import envelope

    unit = "22015"
    first = await client.post(
        "/api/v1/reports",
        json=thematic(unit_id=unit, report_type="monthly", period="2021-02"),
        headers=admin,
    )
    assert first.status_code == 201, first.text
    stored = first.json()
    subs = [
        {
            **stored,
            "indicators": {"supervision.count": n},
            "revision": n,
        }
        for n in range(3, 11)
    ]
    answers = await asyncio.gather(
        *(
            client.post("/api/v1/events", json=envelope(s, type="report.submitted"), headers=admin)
            for s in subs
        )
    )
    assert [a.status_code for a in answers] == [202] * len(subs), [a.text for a in answers]
    assert [a.json()["status"] for a in answers] == ["accepted"] * len(subs)
    got = await client.get(f"/api/v1/reports/{first.json()['report_id']}", headers=admin)
    assert got.json()["revision"] == 1 + len(subs)

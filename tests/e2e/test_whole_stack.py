"""The four services as processes, talking only through RabbitMQ: what staff post at intake
and cases shows up in aggregation and reminders."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lhpn_shared.broker import TOPOLOGY
from tests.support.amqp import purge_queues
from tests.support.http import eventually
from tests.support.infra import DevMongo, RabbitVhost
from tests.support.process import ServiceProcess

pytestmark = pytest.mark.e2e

SERVICES = ("cases", "reminders", "aggregation", "intake")


@pytest.fixture
def stack(
    devmongo: DevMongo, rabbit: RabbitVhost, tmp_path: Path
) -> Iterator[dict[str, ServiceProcess]]:
    import asyncio

    asyncio.run(purge_queues(rabbit.url, *TOPOLOGY))
    run = uuid.uuid4().hex[:6]
    procs = {
        name: ServiceProcess(
            name,
            {
                "MONGO_URL": devmongo.url,
                "MONGO_DB": f"{name}_{run}",
                "RABBIT_URL": rabbit.url_for(name),  # each service its own broker user
                "INBOUND_SYSTEMS": rabbit.inbound_systems,
                "SMTP_PORT": "1",  # no mail server: reminders only queue deliveries here
            },
            tmp_path,
        )
        for name in SERVICES
    }
    started: list[ServiceProcess] = []
    try:
        for p in procs.values():
            p.start(timeout=90)
            started.append(p)
        yield procs
    finally:
        for p in started:
            p.stop()


async def test_what_staff_record_reaches_aggregation_and_reminders_through_events(
    stack: dict[str, ServiceProcess],
) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        tok = await http.post(
            f"{stack['intake'].url}/api/v1/auth/token",
            data={"username": "admin", "password": "admin"},
        )
        auth = {"Authorization": f"Bearer {tok.json()['access_token']}"}
        agg, rem, cases, intake = (
            stack[n].url for n in ("aggregation", "reminders", "cases", "intake")
        )

        async def compliance() -> dict[str, object] | None:
            r = await http.get(
                f"{agg}/api/v1/compliance",
                params={
                    "plan_id": "PY-2021-460",
                    "unit_id": "555",
                    "as_of": "2021-12-31T12:00:00+07:00",
                },
                headers=auth,
            )
            return r.json() if r.status_code == 200 else None

        before = await eventually(compliance, timeout=30)  # units and plan arrived by events
        t2 = next(t for t in before["targets"] if t["code"] == "T2")
        assert t2["in_scope"] == 17 and t2["met"] == 0

        activity = {
            "unit_id": "22015",
            "kind": "supervision",
            "occurred_on": "2021-03-05",
            "title": "Giám sát thực hiện chính sách hỗ trợ phụ nữ nghèo",
            "metrics": {"recommendations": 3, "recommendations_accepted": 2},
            "role": "lead",
        }
        r = await http.post(f"{intake}/api/v1/activities", json=activity, headers=auth)
        assert r.status_code == 201, r.text
        accepted_at = time.monotonic()

        async def supervised() -> bool:
            c = await compliance()
            t2 = next(t for t in c["targets"] if t["code"] == "T2") if c else None
            return bool(t2 and t2["met"] == 1)

        await eventually(supervised, timeout=10)
        seen_after = time.monotonic() - accepted_at

        report = {
            "unit_id": "555",
            "report_type": "thematic_annual",
            "period": "2021",
            "received_at": "2021-10-20T09:00:00+07:00",
            "indicators": {"supervision.count": 1},
        }
        r = await http.post(f"{intake}/api/v1/reports", json=report, headers=auth)
        assert r.status_code == 201, r.text

        async def fulfilled() -> bool:
            r = await http.get(
                f"{rem}/api/v1/obligations",
                params={"unit_id": "555", "report_type": "thematic_annual", "period": "2021"},
                headers=auth,
            )
            items = r.json()["items"] if r.status_code == 200 else []
            return any(o["unit_id"] == "555" and o["status"] == "fulfilled_on_time" for o in items)

        await eventually(fulfilled, timeout=15)

        name = "Nguyễn Thị Bí Mật E2E"
        case = {
            "unit_id": "22015",
            "kind": "consultation",
            "topic": "domestic_violence",
            "channel": "hotline",
            "received_on": "2021-04-02",
            "summary": "Tư vấn về bạo lực gia đình",
            "requester": {"name": name, "phone": "0905123456"},
        }
        r = await http.post(f"{cases}/api/v1/cases", json=case, headers=auth)
        assert r.status_code in (201, 403), r.text
        if r.status_code == 403:  # admins may not open personal data: use district staff
            r = await http.post(
                f"{intake}/api/v1/users",
                json={
                    "username": "e2e-tuyhoa",
                    "password": "matkhau-e2e",
                    "role": "district_staff",
                    "unit_id": "555",
                },
                headers=auth,
            )
            tok = await http.post(
                f"{intake}/api/v1/auth/token",
                data={"username": "e2e-tuyhoa", "password": "matkhau-e2e"},
            )
            staff = {"Authorization": f"Bearer {tok.json()['access_token']}"}
            r = await http.post(f"{cases}/api/v1/cases", json=case, headers=staff)
            assert r.status_code == 201, r.text

        async def counted() -> dict[str, object] | None:
            r = await http.get(
                f"{agg}/api/v1/case-stats",
                params={"unit_id": "555", "period": "2021"},
                headers=auth,
            )
            return r.json() if r.status_code == 200 and r.json()["received"] == 1 else None

        stats = await eventually(counted, timeout=15)
        assert stats["by_topic"]["domestic_violence"] == 1
        assert name not in str(stats)
    assert seen_after < 10

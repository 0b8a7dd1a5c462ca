"""The intake service as a process, driven over HTTP and AMQP like other systems do."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from tests.support.amqp import EventListener, publish_raw
from tests.support.http import eventually
from tests.support.infra import DevMongo, RabbitVhost
from tests.support.process import ServiceProcess

pytestmark = pytest.mark.e2e


@pytest.fixture
def intake(devmongo: DevMongo, rabbit: RabbitVhost, tmp_path: Path) -> Iterator[ServiceProcess]:
    svc = ServiceProcess(
        "intake",
        {
            "MONGO_URL": devmongo.url,
            "MONGO_DB": f"e2e_{uuid.uuid4().hex[:8]}",
            "RABBIT_URL": rabbit.url_for("intake"),
            "INBOUND_SYSTEMS": rabbit.inbound_systems,
            "ADMIN_USERNAME": "admin",
            "ADMIN_PASSWORD": "admin",
        },
        tmp_path,
    )
    svc.start()
    try:
        yield svc
    finally:
        # a clean shutdown: exit 0, or uvicorn re-raising the SIGTERM it handled
        assert svc.stop() in (0, -15), svc.log_path.read_text()[-2000:]


async def test_the_intake_process_records_over_http_and_amqp_and_publishes_both(
    intake: ServiceProcess, rabbit: RabbitVhost
) -> None:
    async with httpx.AsyncClient(base_url=intake.url, timeout=10) as http:
        token = await http.post(
            "/api/v1/auth/token", data={"username": "admin", "password": "admin"}
        )
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        units = await http.get("/api/v1/units", params={"unit_id": "555"}, headers=headers)
        assert len(units.json()["items"]) == 1 + 16  # Tuy Hòa and its 16 wards and communes
        assert (await http.get("/openapi.json")).status_code == 200
        asyncapi = (await http.get("/asyncapi.json")).json()
        assert any(
            "activity.recorded.v1" in name for name in json.dumps(asyncapi["channels"]).split('"')
        )

        async with EventListener(rabbit.url) as events:
            by_http = {
                "activity_id": str(uuid.uuid4()),
                "unit_id": "22015",
                "kind": "decree56_meeting",
                "occurred_on": "2021-05-20",
                "title": "Làm việc định kỳ với UBND phường 6 tháng đầu năm",
                "metrics": {"issues_raised": 4, "issues_answered": 4},
            }
            r = await http.post("/api/v1/activities", json=by_http, headers=headers)
            assert r.status_code == 201, r.text
            by_amqp = {**by_http, "activity_id": str(uuid.uuid4()), "title": "Từ hệ thống khác"}
            env = {
                "event_id": str(uuid.uuid4()),
                "type": "activity.recorded",
                "version": 1,
                "occurred_at": "2021-05-21T08:00:00+07:00",
                "source": "hotline",
                "unit_id": "22015",
                "correlation_id": None,
                "data": by_amqp,
            }
            await publish_raw(
                rabbit.system.url,  # another system, bound to the province
                "lhpn.inbound",
                "activity.recorded.v1",
                json.dumps(env).encode(),
                env["event_id"],
            )
            wanted = {by_http["activity_id"], by_amqp["activity_id"]}
            await events.wait_for(
                lambda got: wanted <= {e["data"].get("activity_id") for e in got}, timeout=20
            )
        listed = await http.get(
            "/api/v1/activities",
            params={"unit_id": "555", "kind": "decree56_meeting"},
            headers=headers,
        )
        assert wanted <= {a["activity_id"] for a in listed.json()["items"]}
    log_lines = intake.log_path.read_text().splitlines()
    assert log_lines and all(line.startswith("{") for line in log_lines if line.strip())


async def test_a_killed_intake_leaves_every_stored_write_with_exactly_one_audit_record(
    intake: ServiceProcess,
) -> None:
    """SIGKILL while eight clients write: every activity stored, acknowledged or not, has its
    record in the audit log once the next process's relay ran — none lost, none twice. (With
    the record written after the document, a kill between the two commits lost it.)"""
    assert intake.proc is not None
    accepted: list[str] = []
    async with httpx.AsyncClient(base_url=intake.url, timeout=10) as http:
        token = await http.post(
            "/api/v1/auth/token", data={"username": "admin", "password": "admin"}
        )
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}

        async def write() -> None:
            while True:
                body = {
                    "activity_id": str(uuid.uuid4()),
                    "unit_id": "22015",
                    "kind": "legal_outreach",
                    "occurred_on": "2021-03-05",
                    "title": "Tuyên truyền pháp luật về bình đẳng giới",
                    "metrics": {"sessions": 1, "participants": 40, "female_participants": 30},
                }
                try:
                    r = await http.post("/api/v1/activities", json=body, headers=headers)
                except httpx.HTTPError:
                    return  # the process is gone
                assert r.status_code == 201, r.text
                accepted.append(body["activity_id"])

        writers = [asyncio.create_task(write()) for _ in range(8)]

        async def enough() -> bool:
            return len(accepted) >= 120

        await eventually(enough, timeout=60)
        intake.proc.kill()
        intake.proc.wait()
        await asyncio.gather(*writers)

    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(intake.env["MONGO_URL"])
    db = mongo[intake.env["MONGO_DB"]]
    try:
        left = await db["activities"].count_documents({"audit.0": {"$exists": True}})
        print(f"{len(accepted)} acknowledged; records still in their documents at the kill: {left}")
        intake.start()

        async def moved() -> bool:
            return await db["activities"].count_documents({"audit.0": {"$exists": True}}) == 0

        await eventually(moved, timeout=30)
        stored = {d["_id"] async for d in db["activities"].find({}, {"_id": 1})}
        assert set(accepted) <= stored
        records = await db["audit"].find({"action": "activities.record"}).to_list()
        assert sorted(r["entity_id"] for r in records) == sorted(stored)  # each exactly once
    finally:
        await mongo.close()

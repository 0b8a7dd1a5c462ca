"""The four services running in-process on one vhost, intake loading the default Phú Yên data
and the others receiving its units by events; callers of every role; a record of each kind in
a commune of district A and in a commune of district B."""

from __future__ import annotations

import base64
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from aggregation.app import create_app as aggregation_app
from aggregation.settings import AggregationSettings
from cases.app import create_app as cases_app
from cases.settings import CasesSettings
from intake.app import create_app as intake_app
from intake.settings import IntakeSettings
from lhpn_shared.auth import Principal, Role, issue_token
from lhpn_shared.broker import TOPOLOGY
from lhpn_shared.settings import ServiceSettings
from reminders.app import create_app as reminders_app
from reminders.settings import RemindersSettings
from tests.support.amqp import purge_queues
from tests.support.http import eventually, login
from tests.support.infra import DevMongo, RabbitVhost

pytestmark = pytest.mark.integration

PROVINCE, DISTRICT_A, COMMUNE_A = "54", "555", "22015"
DISTRICT_B, COMMUNE_B = "557", "22051"
PLAN = "PY-2021-460"
SYSTEM_KEY = "access-test-system-key-7f3a9c"  # system "table", bound to DISTRICT_A
SERVICES = ("intake", "cases", "reminders", "aggregation")


@dataclass
class Stack:
    apps: dict[str, FastAPI]
    clients: dict[str, httpx.AsyncClient]
    settings: dict[str, ServiceSettings]
    activities: dict[str, str] = field(default_factory=dict)
    """unit → the id of an activity of that unit"""
    reports: dict[str, str] = field(default_factory=dict)
    cases: dict[str, str] = field(default_factory=dict)
    admin_headers: dict[str, str] = field(default_factory=dict)

    def token(self, role: Role, unit_id: str | None, subject: str | None = None) -> str:
        principal = Principal(
            subject=subject or f"t-{role.value}-{unit_id}", role=role, unit_id=unit_id
        )
        token, _ = issue_token(self.settings["intake"], principal, datetime.now(UTC))
        return token

    def headers(self, role: Role, unit_id: str | None) -> dict[str, str]:
        if role is Role.system:
            return {"X-API-Key": SYSTEM_KEY}
        return {"Authorization": f"Bearer {self.token(role, unit_id)}"}


def stack_settings(
    devmongo: DevMongo, rabbit: RabbitVhost, intake_overrides: dict[str, Any] | None = None
) -> dict[str, ServiceSettings]:
    tag = uuid.uuid4().hex[:8]
    common: dict[str, Any] = {
        "mongo_url": devmongo.url,
        "inbound_systems": rabbit.inbound_systems,
        "relay_idle_seconds": 0.2,
        "mongo_timeout_ms": 2000,
        "api_keys": f"table:{DISTRICT_A}:{SYSTEM_KEY}",
    }
    key = base64.b64encode(os.urandom(32)).decode()
    return {
        "intake": IntakeSettings(
            **common,
            rabbit_url=rabbit.url_for("intake"),
            mongo_db=f"acc_in_{tag}",
            **(intake_overrides or {}),
        ),
        "cases": CasesSettings(
            **common,
            rabbit_url=rabbit.url_for("cases"),
            mongo_db=f"acc_ca_{tag}",
            case_keys=f"t1:{key}",
        ),
        "reminders": RemindersSettings(
            **common,
            rabbit_url=rabbit.url_for("reminders"),
            mongo_db=f"acc_re_{tag}",
            sweep_interval_seconds=0,
            smtp_port=9,
        ),
        "aggregation": AggregationSettings(
            **common, rabbit_url=rabbit.url_for("aggregation"), mongo_db=f"acc_ag_{tag}"
        ),
    }


@contextlib.asynccontextmanager
async def running_stack(
    devmongo: DevMongo, rabbit: RabbitVhost, intake_overrides: dict[str, Any] | None = None
) -> AsyncIterator[Stack]:
    queues = [q for name in TOPOLOGY for q in (name, f"{name}.dlq")]
    await purge_queues(rabbit.url, *queues)
    settings = stack_settings(devmongo, rabbit, intake_overrides)
    factories = {
        "intake": intake_app,
        "cases": cases_app,
        "reminders": reminders_app,
        "aggregation": aggregation_app,
    }
    apps = {name: factories[name](settings[name]) for name in SERVICES}  # type: ignore[operator]
    async with contextlib.AsyncExitStack() as stack:
        clients = {}
        for name, app in apps.items():
            await stack.enter_async_context(app.router.lifespan_context(app))
            transport = httpx.ASGITransport(app=app, client=("127.0.0.9", 50000))
            clients[name] = await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url=f"http://{name}")
            )
        s = Stack(apps=apps, clients=clients, settings=settings)
        for client in clients.values():

            async def ready(c: httpx.AsyncClient = client) -> bool:
                return (await c.get("/readyz")).status_code == 200

            await eventually(ready, timeout=60)
        s.admin_headers = await login(clients["intake"], "admin", "admin")
        await eventually(lambda: units_arrived(s), timeout=60, interval=0.2)
        await seed_records(s)
        yield s


async def units_arrived(s: Stack) -> bool:
    """Every service knows both districts' communes (by `unit.upserted`)."""
    for name in ("cases", "reminders", "aggregation"):
        r = await s.clients[name].get("/api/v1/audit", params={"limit": 1}, headers=s.admin_headers)
        if r.status_code != 200:
            return False
    headers = s.headers(Role.province_staff, PROVINCE)
    r = await s.clients["cases"].get(
        "/api/v1/cases", params={"unit_id": COMMUNE_B}, headers=headers
    )
    r2 = await s.clients["reminders"].get(
        "/api/v1/obligations", params={"unit_id": COMMUNE_B}, headers=headers
    )
    r3 = await s.clients["aggregation"].get(
        "/api/v1/case-stats", params={"unit_id": COMMUNE_B, "period": "2021"}, headers=headers
    )
    return r.status_code == r2.status_code == r3.status_code == 200


def activity_body(unit_id: str, **over: Any) -> dict[str, Any]:
    body = {
        "activity_id": str(uuid.uuid4()),
        "unit_id": unit_id,
        "kind": "supervision",
        "occurred_on": "2021-03-05",
        "title": "Giám sát thực hiện chính sách BHYT",
        "metrics": {"recommendations": 3, "recommendations_accepted": 1},
        "role": "lead",
    }
    return body | over


def case_body(unit_id: str, **over: Any) -> dict[str, Any]:
    body = {
        "case_id": str(uuid.uuid4()),
        "unit_id": unit_id,
        "kind": "consultation",
        "topic": "marriage_family",
        "channel": "walk_in",
        "received_on": "2021-03-01",
        "summary": "Tư vấn thủ tục ly hôn",
        "requester": {"name": "Nguyễn Thị B", "birth_year": 1990},
    }
    return body | over


def report_body(unit_id: str, **over: Any) -> dict[str, Any]:
    body = {
        "report_id": str(uuid.uuid4()),
        "unit_id": unit_id,
        "report_type": "monthly",
        "period": "2021-03",
        "indicators": {},
        "narrative": "Báo cáo tháng 3",
    }
    return body | over


async def seed_records(s: Stack) -> None:
    """An activity, a report and a case in a commune of district A and one of district B."""
    intake, cases = s.clients["intake"], s.clients["cases"]
    for unit in (COMMUNE_A, COMMUNE_B):
        staff = s.headers(Role.commune_staff, unit)
        r = await intake.post("/api/v1/activities", json=activity_body(unit), headers=staff)
        assert r.status_code == 201, r.text
        s.activities[unit] = r.json()["activity_id"]
        r = await intake.post("/api/v1/reports", json=report_body(unit), headers=staff)
        assert r.status_code == 201, r.text
        s.reports[unit] = r.json()["report_id"]
        r = await cases.post("/api/v1/cases", json=case_body(unit), headers=staff)
        assert r.status_code == 201, r.text
        s.cases[unit] = r.json()["case_id"]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def stack(devmongo: DevMongo, rabbit: RabbitVhost) -> AsyncIterator[Stack]:
    async with running_stack(devmongo, rabbit) as s:
        yield s

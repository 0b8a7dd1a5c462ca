"""The reminders service in-process against the real broker, DevMongo and a real SMTP server.

Facts arrive as other services publish them: envelopes on `lhpn.events`, each published by its
owning service's broker user, built from the default data files. Time is a FixedClock the
tests move, or the `as_of` of a sweep.
"""

from __future__ import annotations

import contextlib
import csv
import json
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from fastapi import FastAPI

from lhpn_shared.auth import Principal, Role, issue_token
from lhpn_shared.clock import LOCAL_TZ, FixedClock
from lhpn_shared.contracts.events import Envelope, make_event
from lhpn_shared.contracts.owners import owner_of
from lhpn_shared.contracts.plans import Plan
from lhpn_shared.contracts.reports import Report
from lhpn_shared.contracts.units import Unit, UnitLevel
from reminders.app import QUEUE, create_app
from reminders.delivery.addresses import Resolver
from reminders.settings import RemindersSettings
from tests.support.amqp import publish_raw, purge_queues
from tests.support.http import eventually, outbox_published, running
from tests.support.infra import DevMongo, RabbitVhost

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[3] / "services" / "intake" / "intake" / "data"
PLAN_ID = "PY-2021-460"
THEMATIC = "thematic_annual"
PROVINCE = "54"
DISTRICTS = ("555", "557", "558", "559", "560", "561", "562", "563", "564")


def vn(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """An instant in Asia/Ho_Chi_Minh time."""
    return datetime(year, month, day, hour, minute, tzinfo=LOCAL_TZ)


def email_of(unit_id: str) -> str:
    return f"hoi-{unit_id}@lhpn.example.vn"


def default_units() -> list[Unit]:
    with (DATA / "phu-yen-2021-units.csv").open(encoding="utf-8", newline="") as f:
        return [
            Unit.model_validate({k: v or None for k, v in row.items()}) for row in csv.DictReader(f)
        ]


def default_plan() -> Plan:
    return Plan.model_validate(json.loads((DATA / "plan-PY-2021-460.json").read_text("utf-8")))


def unit_event(unit: Unit) -> Envelope:
    return make_event(
        "unit.upserted", unit, source="intake", occurred_at=vn(2021, 1, 2), unit_id=unit.unit_id
    )


def plan_event(plan: Plan) -> Envelope:
    return make_event(
        "plan.published", plan, source="intake", occurred_at=vn(2021, 1, 20), unit_id=PROVINCE
    )


def thematic_plan() -> Plan:
    """The 2021 plan with only its thematic annual report (due before 30/10/2021 00:00)."""
    plan = default_plan()
    return plan.model_copy(
        update={"report_schedules": [s for s in plan.report_schedules if s.report_type == THEMATIC]}
    )


def report_event(
    unit_id: str,
    received_at: datetime,
    *,
    report_type: str = THEMATIC,
    period: str = "2021",
    level: UnitLevel = UnitLevel.district,
) -> Envelope:
    schedule = default_plan().schedule(report_type)
    slot = schedule.period(period) if schedule is not None else None
    assert slot is not None, (report_type, period)
    due_at = slot.due_at[level]
    report = Report(
        report_id=uuid.uuid4(),
        unit_id=unit_id,
        report_type=report_type,
        period=period,
        received_at=received_at,
        due_at=due_at,
        on_time=received_at < due_at,
    )
    return make_event(
        "report.submitted", report, source="intake", occurred_at=received_at, unit_id=unit_id
    )


# ---- a real SMTP server on loopback ------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Mail:
    recipients: tuple[str, ...]
    step: str
    subject_ref: str
    subject: str
    body: str


class SmtpSink:
    """aiosmtpd on 127.0.0.1 that keeps every message; it can be stopped and started again
    on the same port (the SMTP server "down")."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[Mail] = []
        self._controller: Controller | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = message_from_bytes(envelope.content, policy=policy.default)
        self.received.append(
            Mail(
                recipients=tuple(envelope.rcpt_tos),
                step=str(msg["X-LHPN-Step"]),
                subject_ref=str(msg["X-LHPN-Subject-Ref"]),
                subject=str(msg["Subject"]),
                body=msg.get_content(),  # type: ignore[attr-defined]
            )
        )
        return "250 Message accepted"

    def start(self) -> None:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def take(self) -> list[Mail]:
        """What arrived since the last call."""
        out, self.received = self.received, []
        return out


def pairs(mails: list[Mail]) -> set[tuple[str, str]]:
    """(recipient e-mail, step) of each mail."""
    return {(rcpt, m.step) for m in mails for rcpt in m.recipients}


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(vn(2021, 10, 20, 8))


@pytest.fixture
def settings(
    devmongo: DevMongo, rabbit: RabbitVhost, db_name: str, smtp: SmtpSink
) -> RemindersSettings:
    return RemindersSettings(
        mongo_url=devmongo.url,
        rabbit_url=rabbit.url_for("reminders"),
        mongo_db=db_name,
        relay_idle_seconds=0.2,
        mongo_timeout_ms=1500,
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_starttls=False,
        smtp_timeout_seconds=5,
        sweep_interval_seconds=0,
        delivery_poll_seconds=0.1,
        retry_base_seconds=60,
        retry_factor=2,
        retry_max_attempts=3,
        portal_url="https://lhpn.example.vn",
    )


# ---- the service under test ------------------------------------------------------------------


@dataclass
class Service:
    app: FastAPI
    client: httpx.AsyncClient
    settings: RemindersSettings
    clock: FixedClock
    rabbit: RabbitVhost

    @property
    def headers(self) -> dict[str, str]:
        """An admin's token, issued at the clock's current instant (the clock moves by days)."""
        return self.token(Role.admin)

    def token(self, role: Role, unit_id: str | None = None) -> dict[str, str]:
        principal = Principal(subject=f"test-{role.value}", role=role, unit_id=unit_id)
        token, _ = issue_token(self.settings, principal, self.clock.now())
        return {"Authorization": f"Bearer {token}"}

    async def publish(self, *envelopes: Envelope) -> None:
        """Each as its owning service publishes it (intake, cases)."""
        for e in envelopes:
            owner = owner_of(e.type)
            assert owner is not None, e.type
            await publish_raw(
                self.rabbit.url_for(owner),
                "lhpn.events",
                e.routing_key,
                e.model_dump_json().encode(),
                message_id=str(e.event_id),
            )

    async def obligations(self, **params: str) -> list[dict[str, Any]]:
        """Every page of GET /api/v1/obligations."""
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            query = {**params, "limit": "1000", **({"cursor": cursor} if cursor else {})}
            r = await self.client.get("/api/v1/obligations", params=query, headers=self.headers)
            assert r.status_code == 200, r.text
            items += r.json()["items"]
            cursor = r.json()["next_cursor"]
            if cursor is None:
                return items

    async def wait_obligations(self, count: int, **params: str) -> list[dict[str, Any]]:
        async def probe() -> list[dict[str, Any]] | None:
            try:
                items = await self.obligations(**params)
            except AssertionError:  # e.g. the unit is not known yet: 404
                return None
            return items if len(items) == count else None

        result: list[dict[str, Any]] = await eventually(probe, timeout=30)
        return result

    async def wait_fulfilled(self, *unit_ids: str, report_type: str = THEMATIC) -> None:
        async def probe() -> bool:
            items = await self.obligations(report_type=report_type, unit_id=PROVINCE)
            done = {o["unit_id"] for o in items if o["received_at"] is not None}
            return set(unit_ids) <= done

        await eventually(probe, timeout=20)

    async def set_contacts(self, unit_id: str, **body: Any) -> None:
        body.setdefault("emails", [email_of(unit_id)])
        r = await self.client.put(f"/api/v1/contacts/{unit_id}", json=body, headers=self.headers)
        assert r.status_code == 200, r.text

    async def sweep(self, as_of: datetime) -> dict[str, Any]:
        self.clock.set(as_of)
        r = await self.client.post(
            "/api/v1/sweeps", json={"as_of": as_of.isoformat()}, headers=self.headers
        )
        assert r.status_code == 200, r.text
        result: dict[str, Any] = r.json()
        return result

    async def outbox_published(self) -> None:
        """Wait until nothing the service wrote is left to publish (its outbox gauges)."""
        await outbox_published(self.client)

    async def notifications(self, unit_id: str = PROVINCE) -> list[dict[str, Any]]:
        r = await self.client.get(
            "/api/v1/notifications",
            params={"unit_id": unit_id, "limit": "1000"},
            headers=self.headers,
        )
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["items"]
        return items


@contextlib.asynccontextmanager
async def started(
    settings: RemindersSettings,
    clock: FixedClock,
    rabbit: RabbitVhost,
    resolver: Resolver | None = None,
) -> AsyncIterator[Service]:
    """The app with its real lifespan, once ready (consuming `reminders.events`); `resolver`
    answers for webhook host names."""
    await purge_queues(rabbit.url, QUEUE, f"{QUEUE}.dlq")
    app = create_app(settings, clock, resolver)
    async with running(app) as client:

        async def ready() -> bool:
            return (await client.get("/readyz")).status_code == 200

        await eventually(ready, timeout=30)
        yield Service(app, client, settings, clock, rabbit)


async def publish_districts(service: Service) -> None:
    """The province and its nine districts, with e-mail contacts."""
    units = [u for u in default_units() if u.unit_id in (PROVINCE, *DISTRICTS)]
    await service.publish(*(unit_event(u) for u in units))

    async def known() -> bool:
        return all(u.unit_id in service.app.state.reminders.tree for u in units)

    await eventually(known, timeout=20)
    for unit_id in (PROVINCE, *DISTRICTS):
        await service.set_contacts(unit_id)


@pytest.fixture
async def service(
    settings: RemindersSettings, clock: FixedClock, rabbit: RabbitVhost
) -> AsyncIterator[Service]:
    async with started(settings, clock, rabbit) as svc:
        yield svc


@pytest.fixture
async def districts(service: Service) -> Service:
    await publish_districts(service)
    return service


@pytest.fixture
async def province(districts: Service) -> Service:
    """The province, its nine districts with e-mail contacts, and the thematic report."""
    await districts.publish(plan_event(thematic_plan()))
    await districts.wait_obligations(9, report_type=THEMATIC, unit_id=PROVINCE)
    return districts

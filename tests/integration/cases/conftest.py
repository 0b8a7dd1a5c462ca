from __future__ import annotations

import base64
import contextlib
import os
from collections.abc import AsyncIterator
from datetime import datetime

import httpx
import pytest
from fastapi import FastAPI

from cases.app import create_app
from cases.service import Cases
from cases.settings import CasesSettings
from lhpn_shared.auth import Role
from lhpn_shared.clock import LOCAL_TZ, FixedClock
from tests.integration.cases.builders import (
    API_KEY,
    COMMUNE,
    DISTRICT,
    OTHER_DISTRICT,
    PROVINCE,
    QUEUES,
    UNITS,
    Caller,
    unit_event,
)
from tests.support.amqp import publish_raw, purge_queues
from tests.support.http import eventually, running
from tests.support.infra import DevMongo, RabbitVhost

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(devmongo: DevMongo, rabbit: RabbitVhost, db_name: str) -> CasesSettings:
    key = base64.b64encode(os.urandom(32)).decode()
    return CasesSettings(
        mongo_url=devmongo.url,
        rabbit_url=rabbit.url_for("cases"),
        inbound_systems=rabbit.inbound_systems,
        mongo_db=db_name,
        relay_idle_seconds=0.2,
        mongo_timeout_ms=1500,
        case_keys=f"t1:{key}",
        api_keys=f"hotline:{DISTRICT}:{API_KEY}",
    )


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2021, 3, 1, 9, 0, tzinfo=LOCAL_TZ))


@pytest.fixture
def app(settings: CasesSettings, clock: FixedClock) -> FastAPI:
    return create_app(settings, clock)


@contextlib.asynccontextmanager
async def serve(
    app: FastAPI, rabbit: RabbitVhost, clock: FixedClock
) -> AsyncIterator[httpx.AsyncClient]:
    """The running service, its unit tree fed by `unit.upserted` events on lhpn.events, as
    intake publishes them."""
    await purge_queues(rabbit.url, *QUEUES)
    async with running(app) as c:

        async def ready() -> bool:
            return (await c.get("/readyz")).status_code == 200

        await eventually(ready, timeout=30)
        for unit in UNITS:
            event_id, body = unit_event(unit, clock)
            await publish_raw(
                rabbit.url_for("intake"), "lhpn.events", "unit.upserted.v1", body, event_id
            )
        svc: Cases = app.state.cases

        async def tree_loaded() -> bool:
            tree = await svc.tree()
            return all(u.unit_id in tree for u in UNITS)

        await eventually(tree_loaded, timeout=15)
        yield c


@pytest.fixture
async def client(
    app: FastAPI, rabbit: RabbitVhost, clock: FixedClock
) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(app, rabbit, clock) as c:
        yield c


def _caller(settings: CasesSettings, clock: FixedClock, role: Role, unit: str | None) -> Caller:
    return Caller(settings, clock, role, unit)


@pytest.fixture
def commune(settings: CasesSettings, clock: FixedClock) -> Caller:
    return _caller(settings, clock, Role.commune_staff, COMMUNE)


@pytest.fixture
def district(settings: CasesSettings, clock: FixedClock) -> Caller:
    return _caller(settings, clock, Role.district_staff, DISTRICT)


@pytest.fixture
def province(settings: CasesSettings, clock: FixedClock) -> Caller:
    return _caller(settings, clock, Role.province_staff, PROVINCE)


@pytest.fixture
def other_district(settings: CasesSettings, clock: FixedClock) -> Caller:
    return _caller(settings, clock, Role.district_staff, OTHER_DISTRICT)


@pytest.fixture
def viewer(settings: CasesSettings, clock: FixedClock) -> Caller:
    return _caller(settings, clock, Role.viewer, None)


@pytest.fixture
def admin(settings: CasesSettings, clock: FixedClock) -> Caller:
    return _caller(settings, clock, Role.admin, None)

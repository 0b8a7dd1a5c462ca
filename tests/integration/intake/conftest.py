from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from intake.app import create_app
from intake.settings import IntakeSettings
from tests.support.http import login, running
from tests.support.infra import DevMongo, RabbitVhost

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(devmongo: DevMongo, rabbit: RabbitVhost, db_name: str) -> IntakeSettings:
    return IntakeSettings(
        mongo_url=devmongo.url,
        rabbit_url=rabbit.url_for("intake"),
        inbound_systems=rabbit.inbound_systems,
        mongo_db=db_name,
        relay_idle_seconds=0.2,
        mongo_timeout_ms=1500,
    )


@pytest.fixture
async def client(settings: IntakeSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with running(app) as c:
        yield c


@pytest.fixture
async def admin(client: httpx.AsyncClient) -> dict[str, str]:
    from tests.support.http import eventually

    async def ready() -> bool:
        r = await client.get("/readyz")
        return r.status_code == 200

    await eventually(ready, timeout=30)
    return await login(client, "admin", "admin")

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from aggregation.app import create_app
from aggregation.batch import EVENTS_QUEUE
from aggregation.settings import AggregationSettings
from lhpn_shared.auth import Principal, Role, issue_token
from tests.support.amqp import purge_queues
from tests.support.http import eventually, running
from tests.support.infra import DevMongo, RabbitVhost

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(devmongo: DevMongo, rabbit: RabbitVhost, db_name: str) -> AggregationSettings:
    return AggregationSettings(
        mongo_url=devmongo.url,
        rabbit_url=rabbit.url_for("aggregation"),
        mongo_db=db_name,
        mongo_timeout_ms=1500,
        retry_delay_seconds=0.3,
    )


@contextlib.asynccontextmanager
async def started(settings: AggregationSettings) -> AsyncIterator[httpx.AsyncClient]:
    """The service running in-process, consuming its queue (bindings declared)."""
    app = create_app(settings)
    async with running(app) as client:

        async def ready() -> bool:
            return (await client.get("/readyz")).status_code == 200

        await eventually(ready, timeout=30)
        yield client


@pytest.fixture
async def client(
    settings: AggregationSettings, rabbit: RabbitVhost
) -> AsyncIterator[httpx.AsyncClient]:
    await purge_queues(rabbit.url, EVENTS_QUEUE, f"{EVENTS_QUEUE}.dlq")
    async with started(settings) as c:
        yield c


def bearer(settings: AggregationSettings, role: Role, unit_id: str | None = None) -> dict[str, str]:
    principal = Principal(subject=f"test-{role.value}", role=role, unit_id=unit_id)
    token, _ = issue_token(settings, principal, datetime.now(UTC))
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def admin(settings: AggregationSettings) -> dict[str, str]:
    return bearer(settings, Role.admin)

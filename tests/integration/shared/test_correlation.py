"""One correlation id from an HTTP request through the events it causes into the next service,
and what intake's `/metrics` says about its broker side — real broker, DevMongo, intake and
reminders in this process (issue 14)."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from intake.app import create_app as intake_app
from intake.settings import IntakeSettings
from lhpn_shared.broker import TOPOLOGY
from lhpn_shared.logs import CorrelationFilter, JsonFormatter
from reminders.app import create_app as reminders_app
from reminders.settings import RemindersSettings
from tests.support.amqp import EventListener, publish_raw, purge_queues
from tests.support.http import eventually, login, running
from tests.support.infra import DevMongo, RabbitVhost

pytestmark = pytest.mark.integration


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(CorrelationFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


async def ready(client: httpx.AsyncClient) -> None:
    async def probe() -> bool:
        return (await client.get("/readyz")).status_code == 200

    await eventually(probe, timeout=60)


@pytest.fixture
async def services(
    devmongo: DevMongo, rabbit: RabbitVhost
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Intake and reminders, each with its own database and broker user."""
    await purge_queues(rabbit.url, *TOPOLOGY, *(f"{q}.dlq" for q in TOPOLOGY))
    tag = uuid.uuid4().hex[:8]
    common = {"mongo_url": devmongo.url, "relay_idle_seconds": 0.2, "mongo_timeout_ms": 1500}
    reminders = reminders_app(
        RemindersSettings(
            **common,
            rabbit_url=rabbit.url_for("reminders"),
            mongo_db=f"t_{tag}_reminders",
            sweep_interval_seconds=0,
        )
    )
    intake = intake_app(
        IntakeSettings(
            **common,
            rabbit_url=rabbit.url_for("intake"),
            inbound_systems=rabbit.inbound_systems,
            mongo_db=f"t_{tag}_intake",
        )
    )
    async with running(reminders) as rem:
        await ready(rem)
        async with running(intake) as itk:
            await ready(itk)
            yield itk, rem


async def test_a_request_s_correlation_id_follows_its_event_into_reminders_and_its_log_lines(
    services: tuple[httpx.AsyncClient, httpx.AsyncClient],
    rabbit: RabbitVhost,
    log_lines: io.StringIO,
) -> None:
    intake, reminders = services
    admin = await login(intake, "admin", "admin")

    async def owed() -> bool:  # the plan reached reminders: the report will fulfil an obligation
        r = await reminders.get(
            "/api/v1/obligations",
            params={"unit_id": "555", "report_type": "thematic_annual", "period": "2021"},
            headers=admin,
        )
        return r.status_code == 200 and any(o["unit_id"] == "555" for o in r.json()["items"])

    await eventually(owed, timeout=30)
    keys = ("report.submitted.v1", "obligation.fulfilled.v1")
    async with EventListener(rabbit.url, keys=keys) as events:
        r = await intake.post(
            "/api/v1/reports",
            json={
                "unit_id": "555",
                "report_type": "thematic_annual",
                "period": "2021",
                "received_at": "2021-10-20T09:00:00+07:00",
                "indicators": {"supervision.count": 1},
            },
            headers={**admin, "X-Request-ID": "trace-report-555"},
        )
        assert r.status_code == 201, r.text
        assert r.headers["X-Correlation-ID"] == "trace-report-555"
        bodies = await events.wait_for(
            lambda b: {e["type"] for e in b} >= {"report.submitted", "obligation.fulfilled"},
            timeout=20,
        )

    by_type = {e["type"]: e for e in bodies}
    assert by_type["report.submitted"]["correlation_id"] == "trace-report-555"
    assert by_type["obligation.fulfilled"]["correlation_id"] == "trace-report-555"
    assert by_type["obligation.fulfilled"]["source"] == "reminders"

    logged = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    handled = [
        x for x in logged if x["msg"] == "event handled" and x.get("type") == "report.submitted.v1"
    ]
    assert handled and all(x["correlation_id"] == "trace-report-555" for x in handled)
    request = [x for x in logged if x["msg"] == "request" and x.get("route") == "/api/v1/reports"]
    assert [x["correlation_id"] for x in request] == ["trace-report-555"]


async def test_an_inbound_event_s_correlation_id_is_kept_when_intake_republishes_it(
    services: tuple[httpx.AsyncClient, httpx.AsyncClient], rabbit: RabbitVhost
) -> None:
    event_id = str(uuid.uuid4())
    envelope = {
        "event_id": event_id,
        "type": "activity.recorded",
        "version": 1,
        "occurred_at": datetime.now(UTC).isoformat(),
        "source": "hotline",
        "unit_id": "22015",
        "correlation_id": "hotline-call-77",
        "data": {
            "activity_id": str(uuid.uuid4()),
            "unit_id": "22015",
            "kind": "legal_outreach",
            "occurred_on": "2021-03-08",
            "title": "Tuyên truyền Luật Phòng, chống bạo lực gia đình",
            "metrics": {"sessions": 1, "participants": 40, "female_participants": 35},
            "revision": 1,
        },
    }
    async with EventListener(rabbit.url, keys=("activity.recorded.v1",)) as events:
        await publish_raw(
            rabbit.system.url,
            "lhpn.inbound",
            "activity.recorded.v1",
            json.dumps(envelope).encode(),
            message_id=event_id,
        )
        (body,) = await events.wait_for(lambda b: len(b) == 1, timeout=20)

    assert body["correlation_id"] == "hotline-call-77"


async def test_intake_s_metrics_show_what_it_published_its_outbox_and_its_dead_letters(
    services: tuple[httpx.AsyncClient, httpx.AsyncClient], rabbit: RabbitVhost
) -> None:
    intake, _ = services
    await publish_raw(
        rabbit.system.url, "lhpn.inbound", "activity.recorded.v1", b"not an envelope", "bad-1"
    )

    def value(text: str, name: str, **labels: str) -> float:
        return sum(
            s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == name and set(labels.items()) <= set(s.labels.items())
        )

    async def dead_lettered() -> str | None:
        text = (await intake.get("/metrics")).text
        dlq = value(text, "lhpn_dead_letter_messages", queue="intake.inbound.dlq")
        return text if dlq == 1 else None

    text = await eventually(dead_lettered, timeout=20)
    published = value(
        text,
        "faststream_published_messages_total",
        app_name="intake",
        destination="lhpn.events.unit.upserted.v1",
        status="success",
    )
    assert published >= 121  # the default tree (root, province, 9 districts, 110 communes)
    assert (
        value(
            text,
            "faststream_published_messages_total",
            destination="lhpn.dead-letter.intake.inbound",
        )
        == 1
    )
    assert value(text, "lhpn_queue_ready_messages", queue="intake.inbound") == 0
    assert 'lhpn_outbox_pending_documents{collection="units",service="intake"} 0.0' in text
    assert 'lhpn_queue_ready_messages{queue="intake.inbound",service="intake"} 0.0' in text
    assert "lhpn_http_request_duration_seconds_bucket" in text

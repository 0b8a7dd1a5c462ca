"""Other systems publish `case.opened` (without personal data) on `lhpn.inbound`: the service
opens the case once and republishes it on `lhpn.events`; a refused message is dead-lettered."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from cases.settings import CasesSettings
from lhpn_shared.broker import REJECTION_HEADER
from tests.integration.cases.builders import (
    Caller,
    as_json,
    make_case_facts,
    make_envelope,
)
from tests.support.amqp import EventListener, drain_queue, publish_raw

KEY = "case.opened.v1"


async def publish(settings: CasesSettings, envelope: dict[str, Any]) -> None:
    await publish_raw(
        settings.rabbit_url, "lhpn.inbound", KEY, as_json(envelope), envelope["event_id"]
    )


async def test_the_same_case_opened_twice_by_another_system_makes_one_case_and_one_event(
    client: httpx.AsyncClient, settings: CasesSettings, commune: Caller
) -> None:
    data = make_case_facts()
    envelope = make_envelope(data)
    async with EventListener(settings.rabbit_url, keys=(KEY,)) as events:
        await publish(settings, envelope)
        await publish(settings, envelope)
        await events.wait_for(lambda b: len(b) >= 1)
        await asyncio.sleep(1.0)  # a duplicate would have had time to arrive
        republished = events.bodies()

    assert [e["event_id"] for e in republished] == [envelope["event_id"]]
    assert republished[0]["source"] == "hotline-1900"
    assert republished[0]["data"]["case_id"] == data["case_id"]
    assert republished[0]["data"]["deadlines"][0]["name"] == "handle_letter"  # a petition
    listed = await client.get("/api/v1/cases", headers=commune.headers)
    assert [c["case_id"] for c in listed.json()["items"]] == [data["case_id"]]
    case = (await client.get(f"/api/v1/cases/{data['case_id']}", headers=commune.headers)).json()
    assert case["timeline"][0]["actor"] == "system:hotline-1900"
    assert case["requester"] is None and case["flags"] == ["poor_household"]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (make_case_facts(requester={"name": "Nguyễn Thị A"}), "requester: Extra inputs"),
        (make_case_facts(unit_id="00000"), "unknown unit_id '00000'"),
        (make_case_facts(kind="lawsuit"), "kind"),
        (make_case_facts(status="accepted"), "status 'received'"),
        (make_case_facts(received_on="2099-01-01"), "received_on"),
        (make_case_facts(flags=["Nguyen Van B"]), "flags"),
    ],
    ids=["personal-data", "unknown-unit", "unknown-kind", "not-new", "future", "free-text-flag"],
)
async def test_a_refused_case_opened_lands_in_the_dead_letter_queue_with_its_reason(
    client: httpx.AsyncClient,
    settings: CasesSettings,
    commune: Caller,
    data: dict[str, Any],
    reason: str,
) -> None:
    envelope = make_envelope(data)
    await publish(settings, envelope)
    dead = await drain_queue(settings.rabbit_url, "cases.inbound.dlq", timeout=15)
    assert [m.message_id for m in dead] == [envelope["event_id"]]
    assert reason in str(dead[0].headers[REJECTION_HEADER])
    assert dead[0].body == as_json(envelope)  # kept whole, for the operator to look at
    listed = await client.get("/api/v1/cases", headers=commune.headers)
    assert listed.json()["items"] == []


async def test_a_message_that_is_not_an_envelope_is_dead_lettered(
    client: httpx.AsyncClient, settings: CasesSettings
) -> None:
    await publish_raw(settings.rabbit_url, "lhpn.inbound", KEY, b'{"event_id": "not json', "x-1")
    dead = await drain_queue(settings.rabbit_url, "cases.inbound.dlq", timeout=15)
    assert [m.message_id for m in dead] == ["x-1"]
    assert "invalid envelope" in str(dead[0].headers[REJECTION_HEADER])


async def test_the_asyncapi_document_names_the_queues_and_the_published_events(
    client: httpx.AsyncClient,
) -> None:
    channels = (await client.get("/asyncapi.json")).json()["channels"]
    assert {"cases.events:lhpn.events", "cases.inbound:lhpn.inbound"} <= set(channels)
    assert {
        f"lhpn.events:{k}.v1" for k in ("case.opened", "case.status_changed", "case.closed")
    } <= set(channels)

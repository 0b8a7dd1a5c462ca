"""Other systems publish `case.opened` (without personal data) on `lhpn.inbound`: the service
opens the case once and republishes it on `lhpn.events`; a refused message is dead-lettered."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from cases.adapters.dead_letters import (
    PERSONAL_DATA_HEADER,
    SEALED_FIELDS_HEADER,
    open_dead_letter,
)
from cases.settings import CasesSettings
from lhpn_shared.broker import REJECTION_HEADER
from lhpn_shared.crypto import DecryptionError, Keyring
from tests.integration.cases.builders import (
    Caller,
    as_json,
    make_case_facts,
    make_envelope,
)
from tests.support.amqp import EventListener, drain_queue, publish_raw
from tests.support.infra import RabbitVhost

KEY = "case.opened.v1"


def keyring(settings: CasesSettings) -> Keyring:
    return settings.cipher().keyring


async def publish(rabbit: RabbitVhost, envelope: dict[str, Any]) -> None:
    """As the session's inbound system (bound to the province, every inbound key)."""
    await publish_raw(
        rabbit.system.url, "lhpn.inbound", KEY, as_json(envelope), envelope["event_id"]
    )


async def test_the_same_case_opened_twice_by_another_system_makes_one_case_and_one_event(
    client: httpx.AsyncClient, rabbit: RabbitVhost, commune: Caller
) -> None:
    data = make_case_facts()
    envelope = make_envelope(data)
    async with EventListener(rabbit.url, keys=(KEY,)) as events:
        await publish(rabbit, envelope)
        await publish(rabbit, envelope)
        # a marker published after the duplicate: the queue hands it over after it
        marker = make_envelope(make_case_facts())
        await publish(rabbit, marker)
        await events.wait_for(lambda b: any(e["event_id"] == marker["event_id"] for e in b))
        republished = [e for e in events.bodies() if e["event_id"] != marker["event_id"]]

    assert [e["event_id"] for e in republished] == [envelope["event_id"]]
    assert republished[0]["source"] == "hotline-1900"
    assert republished[0]["data"]["case_id"] == data["case_id"]
    assert republished[0]["data"]["deadlines"][0]["name"] == "handle_letter"  # a petition
    listed = await client.get("/api/v1/cases", headers=commune.headers)
    assert [c["case_id"] for c in listed.json()["items"]].count(data["case_id"]) == 1
    case = (await client.get(f"/api/v1/cases/{data['case_id']}", headers=commune.headers)).json()
    assert case["timeline"][0]["actor"] == f"broker:{rabbit.system.user}"  # who sent it
    assert case["requester"] is None and case["flags"] == ["poor_household"]


@pytest.mark.parametrize(
    ("data", "reason", "sealed"),
    [
        (
            make_case_facts(requester={"name": "Nguyễn Thị A"}),
            "requester: Extra inputs",
            ["data.requester"],
        ),
        (make_case_facts(unit_id="00000"), "unknown unit_id '00000'", []),
        (make_case_facts(kind="lawsuit"), "kind", ["data.kind"]),
        (make_case_facts(status="accepted"), "status 'received'", []),
        (make_case_facts(received_on="2099-01-01"), "received_on", []),
        (make_case_facts(flags=["Nguyen Van B"]), "flags", ["data.flags"]),
    ],
    ids=["personal-data", "unknown-unit", "unknown-kind", "not-new", "future", "free-text-flag"],
)
async def test_a_refused_case_opened_lands_in_the_dead_letter_queue_with_its_reason(
    client: httpx.AsyncClient,
    settings: CasesSettings,
    rabbit: RabbitVhost,
    commune: Caller,
    data: dict[str, Any],
    reason: str,
    sealed: list[str],
) -> None:
    envelope = make_envelope(data)
    await publish(rabbit, envelope)
    dead = await drain_queue(rabbit.url, "cases.inbound.dlq", timeout=15)
    assert [m.message_id for m in dead] == [envelope["event_id"]]
    headers = dead[0].headers
    assert reason in str(headers[REJECTION_HEADER])
    if sealed:
        # what could name a person is sealed; the facts stay readable for the operator
        assert headers[PERSONAL_DATA_HEADER] == "sealed"
        assert str(headers[SEALED_FIELDS_HEADER]).split(",") == sealed
        kept = json.loads(dead[0].body)
        assert kept["data"]["case_id"] == data["case_id"] and kept["event_id"]
        for path in sealed:
            assert set(kept["data"][path.split(".")[1]]) == {"sealed"}
    else:
        assert dead[0].body == as_json(envelope)  # nothing personal: kept whole
        assert PERSONAL_DATA_HEADER not in headers
    # whoever holds the case key gets the message back exactly as it was published
    opened = open_dead_letter(keyring(settings), dead[0].body, headers, dead[0].message_id)
    assert json.loads(opened) == envelope
    listed = await client.get("/api/v1/cases", headers=commune.headers)
    assert listed.json()["items"] == []


async def test_a_refused_message_carrying_personal_data_keeps_none_of_it_readable_in_the_dlq(
    client: httpx.AsyncClient, settings: CasesSettings, rabbit: RabbitVhost
) -> None:
    name, phone = "Trần Thị Mật Danh", "0914 271 828"
    data = make_case_facts(
        requester={"name": name, "phone": phone},
        summary=f"Chị {name} bị bạo lực gia đình",
        caller_note=f"gọi lại số {phone}",
    )
    envelope = make_envelope(data, reporter=name)
    await publish(rabbit, envelope)

    dead = await drain_queue(rabbit.url, "cases.inbound.dlq", timeout=15)

    assert [m.message_id for m in dead] == [envelope["event_id"]]
    readable = dead[0].body.decode() + repr(dead[0].headers)
    for secret in (name, phone, "Mật Danh", json.dumps(name)[1:-1]):
        assert secret not in readable
    assert dead[0].headers[PERSONAL_DATA_HEADER] == "sealed"
    assert set(str(dead[0].headers[SEALED_FIELDS_HEADER]).split(",")) == {
        "reporter",
        "data.requester",
        "data.summary",
        "data.caller_note",
    }
    assert json.loads(dead[0].body)["data"]["unit_id"] == data["unit_id"]
    opened = open_dead_letter(
        keyring(settings), dead[0].body, dead[0].headers, envelope["event_id"]
    )
    assert json.loads(opened) == envelope
    with pytest.raises(DecryptionError):  # bound to its message: another id does not open it
        open_dead_letter(keyring(settings), dead[0].body, dead[0].headers, "another-message")


async def test_a_message_that_is_not_an_envelope_is_dead_lettered_sealed_whole(
    client: httpx.AsyncClient, settings: CasesSettings, rabbit: RabbitVhost
) -> None:
    body = b'{"event_id": "not json, requester: Nguy\xe1\xbb\x85n Th\xe1\xbb\x8b B'
    await publish_raw(rabbit.system.url, "lhpn.inbound", KEY, body, "x-1")
    dead = await drain_queue(rabbit.url, "cases.inbound.dlq", timeout=15)
    assert [m.message_id for m in dead] == ["x-1"]
    assert "invalid envelope" in str(dead[0].headers[REJECTION_HEADER])
    assert dead[0].headers[PERSONAL_DATA_HEADER] == "sealed-body"
    assert b"requester" not in dead[0].body and "Nguyễn".encode() not in dead[0].body
    assert set(json.loads(dead[0].body)) == {"sealed_body"}
    assert open_dead_letter(keyring(settings), dead[0].body, dead[0].headers, "x-1") == body


async def test_the_asyncapi_document_names_the_queues_and_the_published_events(
    client: httpx.AsyncClient,
) -> None:
    channels = (await client.get("/asyncapi.json")).json()["channels"]
    assert {"cases.events:lhpn.events", "cases.inbound:lhpn.inbound"} <= set(channels)
    assert {
        f"lhpn.events:{k}.v1" for k in ("case.opened", "case.status_changed", "case.closed")
    } <= set(channels)

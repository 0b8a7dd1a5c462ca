"""The requester's personal data (SPEC §6): sealed at rest, never in events, logs or answers to
anyone but staff of the case's unit and of the units above it — and each of their reads audited.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from cases.settings import CasesSettings
from lhpn_shared.logs import JsonFormatter
from tests.integration.cases.builders import (
    OTHER_COMMUNE,
    OTHER_DISTRICT,
    SYSTEM_HEADERS,
    Caller,
    make_case,
)
from tests.support.amqp import EventListener

NAME = "Hồ Thị Quỳnh Zephyrine"
PHONE = "0977 314 159"
ID_NUMBER = "054187002718"
SECRETS = [NAME, PHONE, PHONE.replace(" ", ""), ID_NUMBER]


def leaked(text: str) -> list[str]:
    """The secrets found in `text`, written as they are or JSON-escaped."""
    forms = {s: {s, json.dumps(s)[1:-1]} for s in SECRETS}
    return [s for s, variants in forms.items() if any(v in text for v in variants)]


def make_sensitive_case() -> dict[str, Any]:
    return make_case(
        summary=f"Chị {NAME} bị chồng đánh nhiều lần, cần tư vấn ly hôn.",
        requester={
            "name": NAME,
            "phone": PHONE,
            "address": "Khu phố 3, Phường 1",
            "birth_year": 1987,
            "id_number": ID_NUMBER,
        },
    )


async def raw_documents(settings: CasesSettings) -> str:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url)
    try:
        db = client[settings.mongo_db]
        texts = []
        for name in await db.list_collection_names():
            texts += [repr(doc) async for doc in db[name].find({})]
        return "\n".join(texts)
    finally:
        await client.close()


async def test_requester_data_reaches_only_staff_of_the_unit_and_above_and_nothing_else(
    client: httpx.AsyncClient,
    settings: CasesSettings,
    caplog: pytest.LogCaptureFixture,
    commune: Caller,
    district: Caller,
    province: Caller,
    other_district: Caller,
    viewer: Caller,
    admin: Caller,
) -> None:
    caplog.set_level(logging.DEBUG)
    body = make_sensitive_case()
    url = f"/api/v1/cases/{body['case_id']}"
    refused: list[httpx.Response] = []
    facts_only: list[httpx.Response] = []

    async with EventListener(settings.rabbit_url, keys=("#",)) as events:
        opened = await client.post("/api/v1/cases", json=body, headers=commune.headers)
        assert opened.status_code == 201, opened.text

        # staff of the unit, of its district and of its province see it
        for caller in (commune, district, province):
            r = await client.get(url, headers=caller.headers)
            assert r.status_code == 200, r.text
            assert r.json()["requester"]["name"] == NAME
            assert r.json()["requester"]["id_number"] == ID_NUMBER
            assert r.json()["requester"]["phone"] == PHONE
            assert NAME in r.json()["summary"]

        for to in ("accepted", "in_progress", "resolved", "closed"):
            r = await client.post(f"{url}/transitions", json={"to": to}, headers=district.headers)
            assert r.status_code == 200, r.text

        # another district, a viewer, a system: refused, whatever they try
        for caller in (other_district, viewer):
            refused += [
                await client.get(url, headers=caller.headers),
                await client.post(
                    f"{url}/transitions", json={"to": "in_progress"}, headers=caller.headers
                ),
                await client.post(f"{url}/extensions", json={}, headers=caller.headers),
                await client.get(
                    "/api/v1/cases", params={"unit_id": body["unit_id"]}, headers=caller.headers
                ),
            ]
        refused.append(await client.get(url, headers=SYSTEM_HEADERS))
        refused.append(await client.get(url, headers=admin.headers))
        assert {r.status_code for r in refused} == {403}, [r.text for r in refused]
        same_id = {**body, "unit_id": OTHER_COMMUNE}
        conflict = await client.post("/api/v1/cases", json=same_id, headers=other_district.headers)
        assert conflict.status_code == 409
        refused.append(conflict)

        # lists show facts, never the requester — even to the staff who may open the case
        own = await client.get(
            "/api/v1/cases", params={"unit_id": OTHER_DISTRICT}, headers=other_district.headers
        )
        assert own.status_code == 200 and own.json()["items"] == []
        for headers in (commune.headers, province.headers, admin.headers, SYSTEM_HEADERS):
            r = await client.get("/api/v1/cases", headers=headers)
            assert r.status_code == 200, r.text
            assert [c["case_id"] for c in r.json()["items"]] == [body["case_id"]]
            facts_only.append(r)
        facts_only.append(own)

        await events.wait_for(lambda b: any(e["type"] == "case.closed" for e in b))
        await asyncio.sleep(0.5)

    # the events: the facts of every step, none of the personal data
    published = events.messages
    assert [m.routing_key for m in published] == [
        "case.opened.v1",
        *["case.status_changed.v1"] * 4,
        "case.closed.v1",
    ]
    for message in published:
        assert leaked(message.body.decode()) == []
        assert "requester" not in json.loads(message.body)["data"]

    for r in refused + facts_only:
        assert leaked(r.text) == [], r.text
        assert leaked(str(r.headers)) == []
        assert "requester" not in r.text and "summary" not in r.text

    stored = await raw_documents(settings)
    assert body["case_id"] in stored and "'sealed'" in stored
    assert leaked(stored) == []

    logs = "\n".join(JsonFormatter().format(record) for record in caplog.records)
    assert body["case_id"] in logs  # the logs do speak of the case, by its id
    assert leaked(logs) == []

    # every read of the personal data left an audit record: who, when, which case
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url)
    try:
        audit = await mongo[settings.mongo_db]["audit"].find({"case_id": body["case_id"]}).to_list()
    finally:
        await mongo.close()
    ok = [a for a in audit if a["outcome"] == "ok"]
    reads = sorted(a["actor"] for a in ok if a["action"] == "read")
    assert reads == sorted([commune.subject, district.subject, province.subject])
    assert all(a["personal_data"] and a["at"] for a in ok if a["action"] == "read")
    writes = sorted((a["actor"], a["action"]) for a in ok if a["action"] != "read")
    assert writes == [(commune.subject, "open")] + [(district.subject, "transition")] * 4
    refusals = {(a["actor"], a["action"]) for a in audit if a["outcome"] == "refused"}
    assert (other_district.subject, "read") in refusals
    assert (viewer.subject, "transition") in refusals

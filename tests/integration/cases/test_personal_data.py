"""The requester's personal data (SPEC §6): sealed at rest (with the summary, the timeline notes
and the decline reason), never in events, logs or answers to anyone but staff of the union
holding the case — its own, and the unions above only while it is referred up to them — and each
of their reads audited. Every answer that leaves it out says so.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from cases.settings import CasesSettings
from lhpn_shared.logs import JsonFormatter
from tests.integration.cases.builders import (
    DISTRICT,
    OTHER_COMMUNE,
    OTHER_DISTRICT,
    PROVINCE,
    SYSTEM_HEADERS,
    Caller,
    make_case,
)
from tests.support.amqp import EventListener
from tests.support.http import eventually, outbox_published
from tests.support.infra import RabbitVhost

NAME = "Hồ Thị Quỳnh Zephyrine"
HIDDEN = "Thông tin cá nhân được ẩn"
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


async def audit_of(settings: CasesSettings, case_id: str) -> list[dict[str, Any]]:
    """The case's records in the audit log, once the outbox relay moved those of its writes
    (they travel in the case's document until then)."""
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url)
    try:
        db = mongo[settings.mongo_db]

        async def moved() -> bool:
            doc = await db["cases"].find_one({"_id": case_id}, {"audit": 1})
            return doc is not None and not doc.get("audit")

        await eventually(moved)
        return await db["audit"].find({"entity_type": "case", "entity_id": case_id}).to_list()
    finally:
        await mongo.close()


def personal_reads(audit: list[dict[str, Any]]) -> list[str]:
    """Who read the personal data (sorted: the test clock does not move between requests)."""
    return sorted(
        a["actor"]
        for a in audit
        if a["action"] == "cases.read" and a["outcome"] == "ok" and a["personal_data"]
    )


def assert_withheld(r: httpx.Response) -> None:
    assert r.status_code == 200, r.text
    case = r.json()
    assert case["personal_data"] is False
    assert case["personal_data_notice"].startswith(HIDDEN)
    assert case["requester"] is None and case["summary"] is None
    assert case["decline_reason"] is None
    assert all(e["note"] is None for e in case["timeline"])
    assert leaked(r.text) == []


async def test_province_staff_do_not_see_the_requester_of_a_commune_s_case_until_it_is_referred_up(
    client: httpx.AsyncClient,
    settings: CasesSettings,
    commune: Caller,
    district: Caller,
    province: Caller,
) -> None:
    body = make_sensitive_case()
    url = f"/api/v1/cases/{body['case_id']}"
    assert (await client.post("/api/v1/cases", json=body, headers=commune.headers)).is_success

    # before: the province and the district get the facts, and a notice instead of the requester
    for caller in (province, district):
        before = await client.get(url, headers=caller.headers)
        assert_withheld(before)
        assert before.json()["status"] == "received" and before.json()["referred_up_to"] == []
    assert personal_reads(await audit_of(settings, body["case_id"])) == []

    # the commune refers it up to its district, the district up to the province
    up = await client.post(
        f"{url}/refer-up",
        json={"note": f"Đề nghị huyện hỗ trợ chị {NAME}"},
        headers=commune.headers,
    )
    assert up.status_code == 200, up.text
    assert up.json()["referred_up_to"] == [DISTRICT] and up.json()["personal_data"] is True
    assert_withheld(await client.get(url, headers=province.headers))
    seen_by_district = await client.get(url, headers=district.headers)
    assert seen_by_district.json()["requester"]["name"] == NAME
    up = await client.post(
        f"{url}/refer-up",
        json={"note": "Vụ việc phức tạp, xin ý kiến tỉnh"},
        headers=district.headers,
    )
    assert up.status_code == 200, up.text

    # after: the province sees the requester, and its read is in the audit log
    after = await client.get(url, headers=province.headers)
    assert after.status_code == 200, after.text
    case = after.json()
    assert case["personal_data"] is True and case["personal_data_notice"] is None
    assert case["requester"]["name"] == NAME and case["requester"]["id_number"] == ID_NUMBER
    assert case["referred_up_to"] == [DISTRICT, PROVINCE] and case["status"] == "received"
    referrals = [e for e in case["timeline"] if e["action"] == "referred_up"]
    assert [(e["actor"], e["to_unit_id"]) for e in referrals] == [
        (commune.subject, DISTRICT),
        (district.subject, PROVINCE),
    ]
    assert referrals[0]["note"] == f"Đề nghị huyện hỗ trợ chị {NAME}" and referrals[0]["at"]
    audit = await audit_of(settings, body["case_id"])
    assert personal_reads(audit) == sorted([district.subject, province.subject])
    read = next(a for a in audit if a["actor"] == province.subject and a["action"] == "cases.read")
    assert read["personal_data"] is True and read["actor_unit_id"] == PROVINCE and read["at"]
    assert sorted(a["actor"] for a in audit if a["action"] == "cases.refer_up") == sorted(
        [commune.subject, district.subject]
    )

    # handed back down: the province no longer sees it, the district and the commune still do
    back = await client.post(
        f"{url}/return-down", json={"note": "Huyện tiếp tục xử lý"}, headers=province.headers
    )
    assert back.status_code == 200, back.text
    assert back.json()["personal_data"] is False and back.json()["referred_up_to"] == [DISTRICT]
    assert_withheld(await client.get(url, headers=province.headers))
    for caller in (district, commune):
        r = await client.get(url, headers=caller.headers)
        assert r.json()["requester"]["name"] == NAME
    assert await raw_documents(settings) and leaked(await raw_documents(settings)) == []


async def test_only_the_union_holding_a_case_refers_it_up_or_hands_it_back(
    client: httpx.AsyncClient,
    commune: Caller,
    district: Caller,
    province: Caller,
    other_district: Caller,
    admin: Caller,
) -> None:
    body = make_sensitive_case()
    url = f"/api/v1/cases/{body['case_id']}"
    assert (await client.post("/api/v1/cases", json=body, headers=commune.headers)).is_success
    note = {"note": "Xin ý kiến cấp trên"}

    # not held by them: the district above, another district, an admin, a system
    for headers in (district.headers, other_district.headers, admin.headers, SYSTEM_HEADERS):
        r = await client.post(f"{url}/refer-up", json=note, headers=headers)
        assert r.status_code == 403, r.text
        assert leaked(r.text) == []
    nothing_to_return = await client.post(f"{url}/return-down", json={}, headers=commune.headers)
    assert nothing_to_return.status_code == 409
    without_reason = await client.post(f"{url}/refer-up", json={}, headers=commune.headers)
    assert without_reason.status_code == 422
    assert without_reason.json()["detail"][0]["loc"] == ["body", "note"]

    assert (await client.post(f"{url}/refer-up", json=note, headers=commune.headers)).is_success
    # once at the district, only the district sends it further up or hands it back
    again = await client.post(f"{url}/refer-up", json=note, headers=commune.headers)
    assert again.status_code == 409 and DISTRICT in again.json()["detail"]
    by_province = await client.post(f"{url}/return-down", json={}, headers=province.headers)
    assert by_province.status_code == 403
    assert (await client.post(f"{url}/refer-up", json=note, headers=district.headers)).is_success
    top = await client.post(f"{url}/refer-up", json=note, headers=province.headers)
    assert top.status_code == 409 and PROVINCE in top.json()["detail"]

    # the district above the commune handles the case while it is referred up to it
    moved = await client.post(
        f"{url}/transitions", json={"to": "accepted"}, headers=district.headers
    )
    assert moved.status_code == 200, moved.text


async def test_staff_above_a_case_not_referred_up_to_them_may_not_change_it(
    client: httpx.AsyncClient, commune: Caller, district: Caller, province: Caller
) -> None:
    body = make_sensitive_case()
    url = f"/api/v1/cases/{body['case_id']}"
    assert (await client.post("/api/v1/cases", json=body, headers=commune.headers)).is_success
    for caller in (district, province):
        moved = await client.post(
            f"{url}/transitions", json={"to": "accepted"}, headers=caller.headers
        )
        assert moved.status_code == 403
        assert "chưa được chuyển lên" in moved.json()["detail"]
        extended = await client.post(f"{url}/extensions", json={}, headers=caller.headers)
        assert extended.status_code == 403
    case = (await client.get(url, headers=commune.headers)).json()
    assert case["status"] == "received" and case["revision"] == 1


async def test_personal_data_reaches_only_the_union_holding_the_case_and_nothing_else(
    client: httpx.AsyncClient,
    settings: CasesSettings,
    rabbit: RabbitVhost,
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

    async with EventListener(rabbit.url, keys=("#",)) as events:
        opened = await client.post("/api/v1/cases", json=body, headers=commune.headers)
        assert opened.status_code == 201, opened.text

        r = await client.get(url, headers=commune.headers)
        assert r.status_code == 200, r.text
        assert r.json()["requester"]["name"] == NAME
        assert r.json()["requester"]["id_number"] == ID_NUMBER
        assert r.json()["requester"]["phone"] == PHONE
        assert NAME in r.json()["summary"]

        # notes naming the requester, and a reason for declining: sealed like the requester
        steps = [
            {"to": "accepted", "note": f"Đã gặp chị {NAME}, số CCCD {ID_NUMBER}"},
            {"to": "in_progress"},
            {"to": "resolved", "note": f"Hòa giải xong, gọi lại {PHONE}"},
            {"to": "closed"},
        ]
        for step in steps:
            r = await client.post(f"{url}/transitions", json=step, headers=commune.headers)
            assert r.status_code == 200, r.text
        notes = [e["note"] for e in r.json()["timeline"]]
        assert notes == [None, steps[0]["note"], None, steps[2]["note"], None]
        declined = make_sensitive_case()
        assert (
            await client.post("/api/v1/cases", json=declined, headers=commune.headers)
        ).is_success
        reason = f"Chị {NAME} đã nộp đơn tại Tòa án"
        r = await client.post(
            f"/api/v1/cases/{declined['case_id']}/transitions",
            json={"to": "declined", "note": reason},
            headers=commune.headers,
        )
        assert r.status_code == 200 and r.json()["decline_reason"] == reason

        # the unions above (not referred up to), an admin, a system: the facts, and a notice
        for headers in (district.headers, province.headers, admin.headers, SYSTEM_HEADERS):
            for case_url in (url, f"/api/v1/cases/{declined['case_id']}"):
                r = await client.get(case_url, headers=headers)
                assert_withheld(r)
                facts_only.append(r)

        # another district, a viewer: refused, whatever they try
        for caller in (other_district, viewer):
            refused += [
                await client.get(url, headers=caller.headers),
                await client.post(
                    f"{url}/transitions", json={"to": "in_progress"}, headers=caller.headers
                ),
                await client.post(f"{url}/extensions", json={}, headers=caller.headers),
                await client.post(f"{url}/refer-up", json={"note": "x"}, headers=caller.headers),
                await client.get(
                    "/api/v1/cases", params={"unit_id": body["unit_id"]}, headers=caller.headers
                ),
            ]
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
            assert {c["case_id"] for c in r.json()["items"]} == {
                body["case_id"],
                declined["case_id"],
            }
            assert r.json()["personal_data_notice"].startswith(HIDDEN)
            facts_only.append(r)
        facts_only.append(own)

        await events.wait_for(lambda b: sum(e["type"] == "case.opened" for e in b) == 2)
        await events.wait_for(lambda b: any(e["type"] == "case.closed" for e in b))
        await outbox_published(client)  # everything cases wrote is published…
        await events.flush()  # …and here

    # the events: the facts of every step, none of the personal data
    published = events.messages
    assert sorted(m.routing_key for m in published) == sorted(
        ["case.opened.v1"] * 2 + ["case.status_changed.v1"] * 5 + ["case.closed.v1"]
    )
    for message in published:
        assert leaked(message.body.decode()) == []
        assert "requester" not in json.loads(message.body)["data"]

    for r in refused + facts_only:
        assert leaked(r.text) == [], r.text
        assert leaked(str(r.headers)) == []
        assert '"requester":{' not in r.text and '"summary":"' not in r.text

    stored = await raw_documents(settings)
    assert body["case_id"] in stored and "'sealed'" in stored
    assert leaked(stored) == [] and "Tòa án" not in stored

    logs = "\n".join(JsonFormatter().format(record) for record in caplog.records)
    assert body["case_id"] in logs  # the logs do speak of the case, by its id
    assert leaked(logs) == []

    # every read of the personal data left an audit record: who, when, which case
    audit = await audit_of(settings, body["case_id"])
    ok = [a for a in audit if a["outcome"] == "ok"]
    assert personal_reads(audit) == [commune.subject]
    assert all(a["personal_data"] and a["at"] for a in ok if a["action"] == "cases.read")
    writes = sorted((a["actor"], a["action"]) for a in ok if a["action"] != "cases.read")
    assert writes == [(commune.subject, "cases.open")] + [(commune.subject, "cases.transition")] * 4
    refusals = {(a["actor"], a["action"]) for a in audit if a["outcome"] == "refused"}
    assert (other_district.subject, "cases.read") in refusals
    assert (viewer.subject, "cases.transition") in refusals

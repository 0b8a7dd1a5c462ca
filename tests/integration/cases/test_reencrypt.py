"""Key rotation (README "Rotating the case keys"): `python -m cases reencrypt` re-seals every stored
personal value under the newest key, once, resumably, beside the running service; then the old
key is dropped and every case still opens."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from typing import Any

import httpx
from pydantic import SecretStr
from pymongo import AsyncMongoClient

from cases.app import create_app
from cases.reencrypt import ReencryptReport, _reencrypt_case, reencrypt
from cases.repository import CasesStore
from cases.settings import CasesSettings
from lhpn_shared.clock import FixedClock
from lhpn_shared.mongo import Doc
from tests.integration.cases.builders import Caller, make_case
from tests.integration.cases.conftest import serve
from tests.support.infra import REPO, RabbitVhost

NOTE = "Gặp chị Đinh Thị Khoá Cũ tại nhà, số điện thoại 0905 111 222"
REASON = "Chị Đinh Thị Khoá Cũ đã nộp đơn tại Tòa án"


def make_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def with_keys(settings: CasesSettings, keys: str) -> CasesSettings:
    return settings.model_copy(update={"case_keys": SecretStr(keys)})


def run_command(settings: CasesSettings, *args: str) -> tuple[int, dict[str, Any]]:
    """`python -m cases reencrypt …` as an operator runs it, configured by the environment."""
    env = {
        **os.environ,
        "ENV": "development",
        "MONGO_URL": settings.mongo_url,
        "MONGO_DB": settings.mongo_db,
        "CASE_KEYS": settings.case_keys.get_secret_value(),
        "LOG_LEVEL": "WARNING",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "cases", "reencrypt", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


async def open_cases(client: httpx.AsyncClient, commune: Caller) -> dict[str, dict[str, Any]]:
    """Three cases with every kind of sealed value; returns what the commune sees of each."""
    bodies = [make_case(), make_case(summary="", requester=None), make_case()]
    for body in bodies:
        r = await client.post("/api/v1/cases", json=body, headers=commune.headers)
        assert r.status_code == 201, r.text
    first, _, third = (f"/api/v1/cases/{b['case_id']}" for b in bodies)
    for step in ({"to": "accepted", "note": NOTE}, {"to": "in_progress"}):
        assert (
            await client.post(f"{first}/transitions", json=step, headers=commune.headers)
        ).is_success
    declined = {"to": "declined", "note": REASON}
    assert (
        await client.post(f"{third}/transitions", json=declined, headers=commune.headers)
    ).is_success
    return {b["case_id"]: await seen(client, commune, b["case_id"]) for b in bodies}


async def seen(client: httpx.AsyncClient, commune: Caller, case_id: str) -> dict[str, Any]:
    r = await client.get(f"/api/v1/cases/{case_id}", headers=commune.headers)
    assert r.status_code == 200, r.text
    case: dict[str, Any] = r.json()
    assert case["personal_data"] is True
    return {k: case[k] for k in ("summary", "requester", "decline_reason", "timeline", "revision")}


async def stored_kids(settings: CasesSettings) -> set[str]:
    """The key id of every sealed value in the database."""
    mongo: AsyncMongoClient[Doc] = AsyncMongoClient(settings.mongo_url)
    try:
        docs = await mongo[settings.mongo_db]["cases"].find({}).to_list()
    finally:
        await mongo.close()
    kids: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if {"kid", "nonce", "ct"} <= set(value):
                kids.add(value["kid"])
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(docs)
    return kids


async def test_after_reencrypt_the_old_key_is_retired_and_every_case_still_opens(
    settings: CasesSettings, clock: FixedClock, commune: Caller, rabbit: RabbitVhost
) -> None:
    old, new = make_key(), make_key()
    before = with_keys(settings, f"k1:{old}")
    async with serve(create_app(before, clock), rabbit, clock) as client:
        cases = await open_cases(client, commune)
    assert await stored_kids(settings) == {"k1"}

    rotated = with_keys(settings, f"k2:{new},k1:{old}")
    status, report = run_command(rotated)
    assert status == 0, report
    # 2 requesters x 2 fields (name, birth_year), 2 summaries, 1 note, 1 reason twice (the
    # declining entry's note and the decline reason); the case without personal data: nothing
    assert report["cases_examined"] == 3 and report["cases_rewritten"] == 2
    assert report["values_resealed"] == {"k1": 9} and report["values_current"] == 0
    assert report["cases_failed"] == [] and report["current_key"] == "k2"
    assert await stored_kids(settings) == {"k2"}

    again_status, again = run_command(rotated)
    assert again_status == 0
    assert again["cases_rewritten"] == 0 and again["values_resealed"] == {}
    assert again["values_current"] == 9

    retired = with_keys(settings, f"k2:{new}")
    async with serve(create_app(retired, clock), rabbit, clock) as client:
        for case_id, expected in cases.items():
            assert await seen(client, commune, case_id) == expected


async def test_reencrypt_resumes_after_a_given_case_and_fails_loudly_on_a_value_no_key_opens(
    settings: CasesSettings, clock: FixedClock, commune: Caller, rabbit: RabbitVhost
) -> None:
    old, new, lost = make_key(), make_key(), make_key()
    async with serve(create_app(with_keys(settings, f"k1:{old}"), clock), rabbit, clock) as c:
        ids = []
        for _ in range(3):
            body = make_case()
            assert (await c.post("/api/v1/cases", json=body, headers=commune.headers)).is_success
            ids.append(body["case_id"])
        ids.sort()
    async with serve(create_app(with_keys(settings, f"k0:{lost}"), clock), rabbit, clock) as c:
        # sealed under a key that is lost; its id sorts after the others
        orphan = make_case(case_id=f"ffffffff-ffff-4fff-bfff-{uuid.uuid4().hex[:12]}")
        assert (await c.post("/api/v1/cases", json=orphan, headers=commune.headers)).is_success

    rotated = with_keys(settings, f"k2:{new},k1:{old}")
    status, report = run_command(rotated, "--after", ids[0], "--batch", "1")
    assert status == 1
    assert report["cases_examined"] == 3 and report["last_case_id"] == orphan["case_id"]
    assert report["cases_failed"] == [orphan["case_id"]]
    assert orphan["requester"]["name"] not in json.dumps(report, ensure_ascii=False)

    # the first case was left for a later run: it is still under the old key
    mongo: AsyncMongoClient[Doc] = AsyncMongoClient(settings.mongo_url)
    try:
        first = await mongo[settings.mongo_db]["cases"].find_one({"_id": ids[0]})
    finally:
        await mongo.close()
    assert first is not None and first["sealed"]["requester"]["name"]["kid"] == "k1"


async def test_a_case_changed_while_reencrypt_reads_it_is_read_again_and_nothing_is_lost(
    settings: CasesSettings, clock: FixedClock, commune: Caller, rabbit: RabbitVhost
) -> None:
    old, new = make_key(), make_key()
    before = with_keys(settings, f"k1:{old}")
    rotated = with_keys(settings, f"k2:{new},k1:{old}")
    body = make_case()
    url = f"/api/v1/cases/{body['case_id']}"
    async with serve(create_app(before, clock), rabbit, clock) as client:
        assert (await client.post("/api/v1/cases", json=body, headers=commune.headers)).is_success
        mongo: AsyncMongoClient[Doc] = AsyncMongoClient(settings.mongo_url)
        try:
            store = CasesStore(mongo[settings.mongo_db])
            stale = await store.cases.find_one({"_id": body["case_id"]})
            assert stale is not None
            step = {"to": "accepted", "note": NOTE}
            assert (
                await client.post(f"{url}/transitions", json=step, headers=commune.headers)
            ).is_success
            report = ReencryptReport(current_key="k2")
            await _reencrypt_case(store, rotated.cipher(), stale, report)
            assert report.cases_rewritten == 1 and report.values_resealed == {"k1": 4}
            assert (await reencrypt(store, rotated.cipher())).cases_rewritten == 0
        finally:
            await mongo.close()

    retired = with_keys(settings, f"k2:{new}")
    async with serve(create_app(retired, clock), rabbit, clock) as client:
        case = await seen(client, commune, body["case_id"])
        assert case["timeline"][-1]["note"] == NOTE and case["revision"] == 2
        assert case["requester"]["name"] == body["requester"]["name"]

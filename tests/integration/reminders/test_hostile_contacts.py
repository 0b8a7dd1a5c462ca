"""Contacts typed by staff are not trusted (issue 9, hostile input): a webhook reaches only public
addresses — checked when given and again at delivery, against DNS rebinding —, follows no
redirect and stores no answer; its secret is sealed at rest; an e-mail item is one address."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import SecretStr
from pymongo import AsyncMongoClient

from reminders.contacts import contacts_from_doc
from reminders.delivery.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from reminders.settings import RemindersSettings
from tests.support.infra import RabbitVhost

from .conftest import (
    PROVINCE,
    Service,
    plan_event,
    publish_districts,
    started,
    thematic_plan,
    vn,
)

SECRET = "khoa-bi-mat-webhook-cua-huyen"
UNIT = "561"


class Receiver:
    """A raw HTTP/1.1 endpoint on loopback that keeps each request and gives one answer."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")[1:]
        headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines if x)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.requests.append((headers, body))
        writer.write(self.answer)
        await writer.drain()
        writer.close()


@contextlib.asynccontextmanager
async def receiving(answer: bytes) -> AsyncIterator[Receiver]:
    receiver = Receiver(answer)
    receiver.server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    try:
        yield receiver
    finally:
        receiver.server.close()
        await receiver.server.wait_closed()


OK = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"


class Dns:
    """The answers the service gets for webhook host names; a test changes them."""

    def __init__(self) -> None:
        self.answers: dict[str, list[str]] = {}

    async def resolve(self, host: str, port: int) -> list[str]:
        if host not in self.answers:
            raise OSError("Name or service not known")
        return self.answers[host]


@contextlib.asynccontextmanager
async def service_with(
    settings: RemindersSettings, rabbit: RabbitVhost, clock: Any, dns: Dns, **changes: Any
) -> AsyncIterator[Service]:
    async with started(settings.model_copy(update=changes), clock, rabbit, dns.resolve) as svc:
        await publish_districts(svc)
        yield svc


async def put_contacts(service: Service, **body: Any) -> Any:
    return await service.client.put(f"/api/v1/contacts/{UNIT}", json=body, headers=service.headers)


OUTBOX_BOOKKEEPING = {"outbox": 0, "outbox_pending": 0, "outbox_seq": 0, "audit": 0}
"""what the relay changes in the document after a write (it moves the audit records)"""


async def stored_contacts(settings: RemindersSettings) -> dict[str, Any] | None:
    """The unit's stored contacts, without the relay's bookkeeping."""
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url)
    try:
        return await mongo[settings.mongo_db]["contacts"].find_one(
            {"_id": UNIT}, OUTBOX_BOOKKEEPING
        )
    finally:
        await mongo.close()


async def one_webhook_delivery(service: Service) -> dict[str, Any]:
    """Publish the plan, sweep three days before the thematic report is due, wait for the
    webhook delivery of the unit to settle."""
    await service.publish(plan_event(thematic_plan()))
    await service.wait_obligations(9, report_type="thematic_annual", unit_id=PROVINCE)
    result = await service.sweep(vn(2021, 10, 27, 8))
    (hooked,) = [n for n in result["notifications"] if n["channel"] == "webhook"]
    return dict(hooked)


@pytest.mark.parametrize(
    ("url", "answers"),
    [
        ("http://127.0.0.1:15672/api/users", {}),
        ("http://[::1]:5672/", {}),
        ("http://169.254.169.254/latest/meta-data/", {}),
        ("http://10.0.0.5:27017/", {}),
        ("http://localhost:8001/api/v1/events", {"localhost": ["127.0.0.1"]}),
        ("https://hook.lhpn.test/x", {"hook.lhpn.test": ["93.184.216.34", "192.168.1.20"]}),
    ],
    ids=["loopback", "loopback-v6", "metadata", "private", "localhost", "one-private-answer"],
)
async def test_a_webhook_url_reaching_inside_the_network_is_refused_with_422_naming_it(
    settings: RemindersSettings,
    clock: Any,
    rabbit: RabbitVhost,
    url: str,
    answers: dict[str, list[str]],
) -> None:
    dns = Dns()
    dns.answers.update(answers)
    # as in production: no network allowed besides public addresses
    async with service_with(settings, rabbit, clock, dns, webhook_allowed_networks="") as svc:
        unchanged = await stored_contacts(settings)
        r = await put_contacts(svc, emails=[], webhook_url=url, webhook_secret=SECRET)

    assert r.status_code == 422, r.text
    (problem,) = r.json()["detail"]
    assert problem["loc"] == ["body", "webhook_url"]
    assert "không được phép" in problem["msg"] and "192.168" not in problem["msg"]
    assert await stored_contacts(settings) == unchanged


async def test_a_name_that_rebinds_to_a_loopback_address_after_the_check_gets_no_request(
    settings: RemindersSettings, clock: Any, rabbit: RabbitVhost
) -> None:
    dns = Dns()
    async with (
        receiving(OK) as receiver,
        service_with(settings, rabbit, clock, dns, webhook_allowed_networks="") as svc,
    ):
        url = f"http://hook.lhpn.test:{receiver.port}/lhpn"
        dns.answers["hook.lhpn.test"] = ["93.184.216.34"]  # public when given
        r = await put_contacts(svc, emails=[], webhook_url=url, webhook_secret=SECRET)
        assert r.status_code == 200, r.text

        dns.answers["hook.lhpn.test"] = ["127.0.0.1"]  # then rebound to this machine
        hooked = await one_webhook_delivery(svc)

    assert receiver.requests == []
    assert (hooked["status"], hooked["attempts"]) == ("failed", 1)  # not worth retrying
    assert "không được phép" in hooked["last_error"] and "127.0.0.1" not in hooked["last_error"]


async def test_a_webhook_goes_to_the_address_checked_with_its_name_in_the_host_header(
    settings: RemindersSettings, clock: Any, rabbit: RabbitVhost
) -> None:
    dns = Dns()
    async with (
        receiving(OK) as receiver,
        service_with(settings, rabbit, clock, dns, webhook_allowed_networks="127.0.0.0/8") as svc,
    ):
        dns.answers["hook.lhpn.test"] = ["127.0.0.1"]
        port = receiver.port
        url = f"http://hook.lhpn.test:{port}/lhpn"
        r = await put_contacts(svc, emails=[], webhook_url=url, webhook_secret=SECRET)
        assert r.status_code == 200, r.text
        assert r.json()["has_webhook_secret"] is True and SECRET not in r.text
        hooked = await one_webhook_delivery(svc)

    assert hooked["status"] == "sent"
    ((headers, body),) = receiver.requests
    assert headers["host"] == f"hook.lhpn.test:{port}"
    # signed with the secret, which is stored sealed only
    now = vn(2021, 10, 27, 8)
    ts, signature = headers[TIMESTAMP_HEADER.lower()], headers[SIGNATURE_HEADER.lower()]
    assert verify(body, SECRET, ts, signature, now=now)
    stored = await stored_contacts(settings)
    assert stored is not None and SECRET not in repr(stored)
    assert set(stored["webhook_secret"]) == {"kid", "nonce", "ct"}


async def test_a_redirect_is_not_followed_and_the_stored_error_does_not_echo_it(
    settings: RemindersSettings, clock: Any, rabbit: RabbitVhost
) -> None:
    dns = Dns()
    async with receiving(OK) as inner:
        redirect = (
            b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:%d/internal\r\n"
            b"Content-Length: 0\r\n\r\n" % inner.port
        )
        async with (
            receiving(redirect) as outer,
            service_with(settings, rabbit, clock, dns) as svc,  # development: loopback allowed
        ):
            url = f"http://127.0.0.1:{outer.port}/lhpn"
            r = await put_contacts(svc, emails=[], webhook_url=url, webhook_secret=SECRET)
            assert r.status_code == 200, r.text
            hooked = await one_webhook_delivery(svc)

    assert len(outer.requests) == 1 and inner.requests == []
    assert hooked["status"] == "failed"
    assert "HTTP 307" in hooked["last_error"] and "/internal" not in hooked["last_error"]


@pytest.mark.parametrize(
    "item",
    [
        "hoi-561@lhpn.example.vn, hoi-562@lhpn.example.vn",
        "hoi-561@lhpn.example.vn;hoi-562@lhpn.example.vn",
        "Hội LHPN <hoi-561@lhpn.example.vn>",
        "hoi-561@lhpn.example.vn\r\nBcc: ai-do@example.com",
        "hoi-561@@lhpn.example.vn",
        "hoi-561@localhost",
        "không phải địa chỉ",
    ],
)
async def test_an_e_mail_item_holding_anything_but_one_address_is_refused_with_422(
    settings: RemindersSettings, clock: Any, rabbit: RabbitVhost, item: str
) -> None:
    async with service_with(settings, rabbit, clock, Dns()) as svc:
        unchanged = await stored_contacts(settings)
        r = await put_contacts(svc, emails=["hoi-561@lhpn.example.vn", item])

    assert r.status_code == 422, r.text
    (problem,) = r.json()["detail"]
    assert problem["loc"] == ["body", "emails", 1]
    assert "đúng một địa chỉ" in problem["msg"]
    assert await stored_contacts(settings) == unchanged


async def test_one_address_per_item_is_accepted(
    settings: RemindersSettings, clock: Any, rabbit: RabbitVhost
) -> None:
    async with service_with(settings, rabbit, clock, Dns()) as svc:
        emails = ["hoi-561@lhpn.example.vn", "chu.tich+561@phuyen.gov.vn"]
        r = await put_contacts(svc, emails=emails)
    assert r.status_code == 200, r.text
    assert r.json()["emails"] == emails
    stored = await stored_contacts(settings)
    assert stored is not None and stored["emails"] == emails


async def test_reencrypt_moves_every_webhook_secret_to_the_newest_key_so_the_old_one_can_go(
    settings: RemindersSettings, clock: Any, rabbit: RabbitVhost
) -> None:
    old, new = (base64.b64encode(os.urandom(32)).decode() for _ in range(2))
    keys = SecretStr(f"k1:{old}")
    async with service_with(settings, rabbit, clock, Dns(), webhook_secret_keys=keys) as svc:
        url = "http://127.0.0.1:9/lhpn"  # development: loopback allowed; never called here
        r = await put_contacts(svc, emails=[], webhook_url=url, webhook_secret=SECRET)
        assert r.status_code == 200, r.text
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url)
    try:  # a secret an older version kept in clear
        await mongo[settings.mongo_db]["contacts"].update_one(
            {"_id": "562"}, {"$set": {"webhook_url": url, "webhook_secret": SECRET + "-562"}}
        )
    finally:
        await mongo.close()

    def run(keys: str) -> dict[str, Any]:
        env = {
            **os.environ,
            "ENV": "development",
            "MONGO_URL": settings.mongo_url,
            "MONGO_DB": settings.mongo_db,
            "WEBHOOK_SECRET_KEYS": keys,
        }
        proc = subprocess.run(
            [sys.executable, "-m", "reminders", "reencrypt"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=True,
        )
        result: dict[str, Any] = json.loads(proc.stdout)
        return result

    first = run(f"k2:{new},k1:{old}")
    assert (first["units_examined"], first["secrets_resealed"], first["units_failed"]) == (2, 2, [])
    again = run(f"k2:{new},k1:{old}")
    assert (again["secrets_resealed"], again["secrets_current"]) == (0, 2)

    only_new = RemindersSettings(webhook_secret_keys=f"k2:{new}").webhook_keyring()
    mongo = AsyncMongoClient(settings.mongo_url)
    try:
        docs = (
            await mongo[settings.mongo_db]["contacts"]
            .find({"_id": {"$in": [UNIT, "562"]}})
            .to_list()
        )
    finally:
        await mongo.close()
    opened = {d["_id"]: contacts_from_doc(d, only_new).webhook_secret for d in docs}
    assert opened == {UNIT: SECRET, "562": SECRET + "-562"}
    assert SECRET not in repr(docs)

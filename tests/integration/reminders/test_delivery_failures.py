"""Deliveries that fail: retried with backoff on the injected clock, then `failed`, visible."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from reminders.delivery.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from reminders.sweep import NO_CONTACT
from tests.support.amqp import EventListener
from tests.support.http import eventually

from .conftest import DISTRICTS, Service, SmtpSink, email_of, pairs, vn

SECRET = "khoa-bi-mat-cua-huyen-561"


INTERNAL = b"Traceback (most recent call last): db mongodb://admin:pw@10.0.0.5:27017"


class FailingWebhook:
    """A raw HTTP/1.1 endpoint on loopback that answers every request 500 (with a body telling
    internal details, as a crashing application does) and keeps it."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/lhpn/hook"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")[1:]
        headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines if x)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.requests.append((headers, body))
        writer.write(
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: %d\r\n\r\n%s"
            % (len(INTERNAL), INTERNAL)
        )
        await writer.drain()
        writer.close()


@pytest.fixture
async def webhook() -> AsyncIterator[FailingWebhook]:
    hook = FailingWebhook()
    hook.server = await asyncio.start_server(hook.handle, "127.0.0.1", 0)
    try:
        yield hook
    finally:
        hook.server.close()
        await hook.server.wait_closed()


async def test_deliveries_due_while_the_smtp_server_is_down_retry_and_arrive_when_it_is_back(
    province: Service, smtp: SmtpSink
) -> None:
    smtp.stop()
    result = await province.sweep(vn(2021, 10, 27, 8))

    assert len(result["notifications"]) == 9
    assert {n["status"] for n in result["notifications"]} == {"retrying"}
    assert all(f"127.0.0.1:{smtp.port}" in n["last_error"] for n in result["notifications"])
    assert smtp.received == []

    smtp.start()
    province.clock.advance(timedelta(seconds=61))  # past next_attempt_at (1 minute)

    async def all_sent() -> list[dict[str, object]] | None:
        items = await province.notifications()
        return items if {n["status"] for n in items} == {"sent"} else None

    items = await eventually(all_sent, timeout=20)
    assert {(n["attempts"], n["step"]) for n in items} == {(2, "before_3d")}
    assert pairs(smtp.take()) == {(email_of(d), "before_3d") for d in DISTRICTS}


async def test_a_webhook_answering_500_ends_failed_after_the_configured_attempts(
    province: Service, smtp: SmtpSink, webhook: FailingWebhook
) -> None:
    await province.set_contacts("561", emails=[], webhook_url=webhook.url, webhook_secret=SECRET)

    async with EventListener(province.rabbit.url, keys=("notification.failed.v1",)) as events:
        result = await province.sweep(vn(2021, 10, 27, 8))
        (hooked,) = [n for n in result["notifications"] if n["channel"] == "webhook"]
        assert (hooked["unit_id"], hooked["status"], hooked["attempts"]) == ("561", "retrying", 1)

        for wait in (61, 121):  # 1 minute, then 2 (retry_factor 2), 3 attempts in all
            attempts = len(webhook.requests)
            province.clock.advance(timedelta(seconds=wait))

            async def retried(before: int = attempts) -> bool:
                return len(webhook.requests) > before

            await eventually(retried, timeout=20)

        async def failed() -> dict[str, object] | None:
            items = await province.notifications("561")
            return next((n for n in items if n["status"] == "failed"), None)

        item = await eventually(failed, timeout=20)
        (event,) = await events.wait_for(lambda bodies: len(bodies) >= 1)

    assert len(webhook.requests) == 3
    assert item["attempts"] == 3
    # what is stored says what happened, never what the receiver answered
    assert item["last_error"] == "webhook: máy nhận trả lời HTTP 500"
    assert item["next_attempt_at"] is None
    assert event["type"] == "notification.failed"
    assert event["data"]["notification_id"] == item["notification_id"]
    assert (event["data"]["status"], event["data"]["attempts"]) == ("failed", 3)
    headers, body = webhook.requests[0]
    assert verify(
        body,
        SECRET,
        headers[TIMESTAMP_HEADER.lower()],
        headers[SIGNATURE_HEADER.lower()],
        now=vn(2021, 10, 27, 8),
    )
    payload = json.loads(body)
    assert (payload["step"], payload["recipient_unit_id"]) == ("before_3d", "561")
    assert "Hội LHPN huyện Sông Hinh" in payload["body"]
    # the other districts got their e-mail; 561 has no address, only the webhook
    assert pairs(smtp.take()) == {(email_of(d), "before_3d") for d in DISTRICTS if d != "561"}


async def test_a_unit_without_any_address_gets_a_failed_delivery_that_says_why(
    province: Service, smtp: SmtpSink
) -> None:
    await province.set_contacts("563", emails=[])

    result = await province.sweep(vn(2021, 10, 27, 8))

    (item,) = [n for n in result["notifications"] if n["unit_id"] == "563"]
    assert (item["channel"], item["status"], item["attempts"]) == ("email", "failed", 0)
    assert item["last_error"] == NO_CONTACT
    assert len(smtp.take()) == 8

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from reminders.delivery.addresses import AddressGuard
from reminders.delivery.errors import DeliveryError
from reminders.delivery.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    post_webhook,
    reminder_payload,
    sign,
    verify,
)
from reminders.domain.messages import ReportReminder

NOW = datetime(2021, 11, 2, 1, 0, tzinfo=UTC)
PUBLIC = {"hooks.example.vn": ["93.184.216.34"], "h.example": ["93.184.216.35"]}


def guard_resolving(answers: dict[str, list[str]]) -> AddressGuard:
    """A guard whose DNS answers are `answers` (no network in unit tests)."""

    async def resolve(host: str, port: int) -> list[str]:
        if host not in answers:
            raise OSError("no such host")
        return answers[host]

    return AddressGuard((), resolve)


GUARD = guard_resolving(PUBLIC)
BODY = '{"subject":"Quá hạn 3 ngày: Báo cáo hoạt động chuyên đề năm 2021"}'.encode()


def a_secret() -> str:
    return uuid.uuid4().hex


def test_the_signature_is_the_hex_hmac_sha256_of_timestamp_dot_body():
    secret = a_secret()
    ts = int(NOW.timestamp())

    expected = hmac.new(secret.encode(), f"{ts}.".encode() + BODY, hashlib.sha256).hexdigest()

    assert sign(BODY, secret, ts) == f"sha256={expected}"


def test_a_genuine_request_verifies():
    secret = a_secret()
    ts = int(NOW.timestamp())

    assert verify(BODY, secret, str(ts), sign(BODY, secret, ts), now=NOW + timedelta(seconds=5))


def flip_last_hex_digit(signature: str) -> str:
    return signature[:-1] + ("1" if signature[-1] == "0" else "0")


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda body, secret, ts, sig: (body + b" ", secret, ts, sig), id="body"),
        pytest.param(lambda body, secret, ts, sig: (body, "other", ts, sig), id="secret"),
        pytest.param(lambda body, secret, ts, sig: (body, secret, ts + 1, sig), id="timestamp"),
        pytest.param(
            lambda body, secret, ts, sig: (body, secret, ts, flip_last_hex_digit(sig)),
            id="signature",
        ),
        pytest.param(lambda body, secret, ts, sig: (body, secret, "soon", sig), id="garbage-ts"),
    ],
)
def test_a_tampered_request_does_not_verify(tamper):
    secret = a_secret()
    ts = int(NOW.timestamp())

    body, key, stamp, sig = tamper(BODY, secret, ts, sign(BODY, secret, ts))

    assert not verify(body, key, stamp, sig, now=NOW)


def test_an_old_request_is_refused_even_with_a_good_signature():
    secret = a_secret()
    ts = int(NOW.timestamp())

    assert not verify(BODY, secret, ts, sign(BODY, secret, ts), now=NOW + timedelta(minutes=6))


async def test_a_webhook_posts_utf8_json_with_a_signature_the_receiver_can_verify():
    secret = a_secret()
    seen: list[httpx.Request] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202)

    planned = ReportReminder(
        step="after_3d",
        recipient_unit_id="563",
        step_at=datetime(2021, 11, 1, 17, tzinfo=UTC),
        due_at=datetime(2021, 10, 29, 17, tzinfo=UTC),
        obligation_id="PY-2021-460:thematic_annual:2021:563",
        plan_id="PY-2021-460",
        report_type="thematic_annual",
        period="2021",
        unit_id="563",
    )
    payload = reminder_payload(planned, "Quá hạn 3 ngày", "Kính gửi: Hội LHPN huyện Phú Hoà")

    async with httpx.AsyncClient(transport=httpx.MockTransport(receiver)) as client:
        status = await post_webhook(
            client,
            "https://hooks.example.vn/lhpn",
            payload,
            secret=secret,
            sent_at=NOW,
            guard=GUARD,
        )

    assert status == 202
    (request,) = seen
    # sent to the address checked, named for the receiver and for TLS as the URL names it
    assert str(request.url) == "https://93.184.216.34/lhpn"
    assert request.headers["host"] == "hooks.example.vn"
    assert request.extensions["sni_hostname"] == "hooks.example.vn"
    assert request.headers["content-type"] == "application/json; charset=utf-8"
    assert request.headers[TIMESTAMP_HEADER] == str(int(NOW.timestamp()))
    assert verify(
        request.content,
        secret,
        request.headers[TIMESTAMP_HEADER],
        request.headers[SIGNATURE_HEADER],
        now=NOW,
    )
    assert "Hội LHPN huyện Phú Hoà".encode() in request.content
    sent = json.loads(request.content)
    assert sent["subject_ref"] == "PY-2021-460:thematic_annual:2021:563"
    assert sent["message"]["kind"] == "report_reminder"


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (429, True), (410, False)])
async def test_a_refused_webhook_raises_a_delivery_error_saying_whether_to_retry(status, retryable):
    transport = httpx.MockTransport(lambda request: httpx.Response(status))

    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(DeliveryError) as caught:
            await post_webhook(
                client, "https://h.example/x", {}, secret="s", sent_at=NOW, guard=GUARD
            )

    assert caught.value.retryable is retryable
    assert caught.value.reason == f"webhook: máy nhận trả lời HTTP {status}"


async def test_an_unreachable_webhook_is_a_retryable_delivery_error():
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
        with pytest.raises(DeliveryError) as caught:
            await post_webhook(
                client, "https://h.example/x", {}, secret="s", sent_at=NOW, guard=GUARD
            )

    assert caught.value.retryable


INTERNAL = "Traceback at /srv/app/hook.py: mongodb://admin:pw@10.0.0.5:27017 refused"


async def test_a_stored_error_never_echoes_the_receiver_s_answer_or_internal_details():
    answer = httpx.MockTransport(lambda request: httpx.Response(500, text=INTERNAL))

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(INTERNAL, request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout(INTERNAL, request=request)

    reasons = []
    for transport in (answer, httpx.MockTransport(refuse), httpx.MockTransport(slow)):
        async with httpx.AsyncClient(transport=transport) as client:
            with pytest.raises(DeliveryError) as caught:
                await post_webhook(
                    client, "https://h.example/x", {}, secret="s", sent_at=NOW, guard=GUARD
                )
        reasons.append(caught.value.reason)

    assert reasons == [
        "webhook: máy nhận trả lời HTTP 500",
        "webhook: không kết nối được tới máy nhận",
        "webhook: máy nhận không trả lời kịp (hết thời gian chờ)",
    ]
    assert all("10.0.0.5" not in r and "Traceback" not in r for r in reasons)


async def test_a_redirect_is_not_followed_and_is_not_worth_retrying():
    seen: list[httpx.Request] = []

    def redirect(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(302, headers={"Location": "http://169.254.169.254/latest/"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(redirect)) as client:
        with pytest.raises(DeliveryError) as caught:
            await post_webhook(
                client, "https://h.example/x", {}, secret="s", sent_at=NOW, guard=GUARD
            )

    assert [str(r.url) for r in seen] == ["https://93.184.216.35/x"]
    assert not caught.value.retryable
    assert "HTTP 302" in caught.value.reason and "169.254" not in caught.value.reason


@pytest.mark.parametrize("inside", ["127.0.0.1", "10.0.0.5", "169.254.169.254", "::1"])
async def test_a_name_that_now_resolves_inside_the_network_is_refused_before_any_request(inside):
    """DNS rebinding: public when the URL was given, internal at delivery."""
    seen: list[httpx.Request] = []
    rebound = guard_resolving({"hooks.example.vn": ["93.184.216.34", inside]})

    async with httpx.AsyncClient(
        transport=httpx.MockTransport(lambda r: seen.append(r) or httpx.Response(200))
    ) as client:
        with pytest.raises(DeliveryError) as caught:
            await post_webhook(
                client, "https://hooks.example.vn/x", {}, secret="s", sent_at=NOW, guard=rebound
            )

    assert seen == []
    assert not caught.value.retryable
    assert "không được phép" in caught.value.reason and inside not in caught.value.reason

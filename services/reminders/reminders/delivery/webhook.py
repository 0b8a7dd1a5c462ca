"""Webhooks (SPEC §7): a JSON POST signed with the receiving unit's secret.

The request goes only to a public address checked at the moment of sending
(`delivery.addresses`), and a redirect is never followed.

Headers:
- `X-LHPN-Timestamp`: Unix seconds when the request was signed;
- `X-LHPN-Signature`: `sha256=<hex>`, the HMAC-SHA256 with the secret of
  `<timestamp>.` followed by the raw body bytes. Binding the timestamp into the signature
  lets a receiver refuse replays of an old request (see `verify`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import httpx

from ..domain.messages import PlannedMessage
from .addresses import AddressGuard, RefusedAddress
from .errors import DeliveryError

SIGNATURE_HEADER = "X-LHPN-Signature"
TIMESTAMP_HEADER = "X-LHPN-Timestamp"
DEFAULT_TOLERANCE = timedelta(minutes=5)


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """`sha256=<hex>` of HMAC-SHA256(secret, f"{timestamp}." + body)."""
    signed = f"{timestamp}.".encode() + body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def verify(
    body: bytes,
    secret: str,
    timestamp: str | int,
    signature: str,
    *,
    now: datetime,
    tolerance: timedelta = DEFAULT_TOLERANCE,
) -> bool:
    """True when `signature` matches and `timestamp` is within `tolerance` of `now`."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs(now.timestamp() - ts) > tolerance.total_seconds():
        return False
    return hmac.compare_digest(sign(body, secret, ts), signature)


def encode_body(payload: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON (Vietnamese text as is, not \\u escapes)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def reminder_payload(planned: PlannedMessage, subject: str, body: str) -> dict[str, Any]:
    """The JSON a unit's webhook receives for one reminder."""
    return {
        "type": planned.kind,
        "step": planned.step,
        "recipient_unit_id": planned.recipient_unit_id,
        "subject_ref": planned.subject_ref,
        "subject": subject,
        "body": body,
        "message": planned.model_dump(mode="json"),
    }


async def post_webhook(
    client: httpx.AsyncClient,
    url: str,
    payload: Mapping[str, Any],
    *,
    secret: str,
    sent_at: datetime,
    guard: AddressGuard,
    headers: Mapping[str, str] | None = None,
) -> int:
    """POST `payload` signed to the checked address of `url` (`AddressGuard.pin`, against DNS
    rebinding), never following a redirect; returns the 2xx status. Raises DeliveryError
    otherwise, whose reason names the failure but never echoes what the receiver answered or
    where the name resolved to."""
    try:
        target = await guard.pin(url)
    except RefusedAddress as exc:
        raise DeliveryError(f"webhook: {exc.message}", retryable=False) from None
    body = encode_body(payload)
    timestamp = int(sent_at.timestamp())
    request_headers = {
        **(headers or {}),
        "Host": target.host,
        "Content-Type": "application/json; charset=utf-8",
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(body, secret, timestamp),
    }
    request = client.build_request(
        "POST", target.url, content=body, headers=request_headers, extensions=target.extensions()
    )
    try:
        # the answer's body is never read: only its status matters, and it may be large
        response = await client.send(request, stream=True, follow_redirects=False)
        await response.aclose()
    except httpx.TimeoutException:
        raise DeliveryError("webhook: máy nhận không trả lời kịp (hết thời gian chờ)") from None
    except httpx.ConnectError:
        raise DeliveryError("webhook: không kết nối được tới máy nhận") from None
    except httpx.HTTPError as exc:
        raise DeliveryError(f"webhook: lỗi khi gửi ({type(exc).__name__})") from None
    if response.is_redirect:
        raise DeliveryError(
            f"webhook: máy nhận trả lời chuyển hướng (HTTP {response.status_code}); "
            "không đi theo chuyển hướng, hãy khai báo đúng địa chỉ webhook",
            retryable=False,
        )
    if not response.is_success:
        # 408, 429 and 5xx may pass later; any other refusal will not.
        retryable = response.status_code in (408, 429) or response.status_code >= 500
        raise DeliveryError(
            f"webhook: máy nhận trả lời HTTP {response.status_code}", retryable=retryable
        )
    return response.status_code

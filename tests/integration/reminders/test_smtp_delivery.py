"""`send_email` against a real SMTP server (aiosmtpd) on 127.0.0.1: no other network."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes, policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from reminders.delivery.email import SmtpConfig, send_email
from reminders.delivery.errors import DeliveryError

SENDER = "nhac-viec@lhpn.example.vn"
FROM = f"Hội LHPN tỉnh Phú Yên <{SENDER}>"
SUBJECT = (
    "[Hội LHPN] 2 đơn vị chưa gửi Báo cáo hoạt động chuyên đề năm 2021 – kỳ năm 2021 "
    "(Huyện Phú Hoà, Thị xã Đông Hòa)"
)
BODY = (
    "Kính gửi: Hội LHPN tỉnh Phú Yên,\n\n"
    "Đến ngày 04/11/2021, 2 đơn vị trực thuộc chưa gửi Báo cáo hoạt động chuyên đề năm 2021, "
    "kỳ năm 2021.\n"
    "Hạn gửi là trước 00 giờ 00 ngày 30 tháng 10 năm 2021 (hết ngày 29/10/2021); "
    "đã trễ 5 ngày.\n\n"
    "1. Huyện Phú Hoà (mã 563)\n2. Thị xã Đông Hòa (mã 564)\n"
)


class Inbox:
    """An aiosmtpd handler that keeps what it receives and refuses `refuse@…` recipients."""

    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], bytes]] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address.startswith("refuse@"):
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


async def test_a_vietnamese_subject_and_body_arrive_and_decode_back_identically(smtp_server):
    inbox, port = smtp_server
    config = SmtpConfig(host="127.0.0.1", port=port, from_address=FROM, start_tls=False)

    message_id = await send_email(
        config,
        to=["hoi-phu-yen@example.vn", "ban-tuyen-giao@example.vn"],
        subject=SUBJECT,
        body=BODY,
        sent_at=datetime(2021, 11, 4, 1, tzinfo=UTC),
    )

    (mail_from, rcpt_tos, content) = inbox.received[0]
    assert len(inbox.received) == 1
    assert mail_from == SENDER
    assert rcpt_tos == ["hoi-phu-yen@example.vn", "ban-tuyen-giao@example.vn"]
    assert content.isascii()
    received = message_from_bytes(content, policy=policy.default)
    assert received["Subject"] == SUBJECT
    assert received["From"] == FROM
    assert received["Message-ID"] == message_id
    assert message_id.startswith("<") and message_id.endswith("@lhpn.example.vn>")
    assert received.get_content_charset() == "utf-8"
    assert received.get_content().replace("\r\n", "\n") == BODY


async def test_a_refused_recipient_is_a_delivery_error_not_worth_retrying(smtp_server):
    inbox, port = smtp_server
    config = SmtpConfig(host="127.0.0.1", port=port, from_address=SENDER, start_tls=False)

    with pytest.raises(DeliveryError) as caught:
        await send_email(
            config,
            to=["refuse@example.vn"],
            subject=SUBJECT,
            body=BODY,
            sent_at=datetime(2021, 11, 4, 1, tzinfo=UTC),
        )

    assert not caught.value.retryable
    assert inbox.received == []


async def test_an_unreachable_server_is_a_delivery_error_worth_retrying():
    config = SmtpConfig(
        host="127.0.0.1", port=free_port(), from_address=SENDER, start_tls=False, timeout=5
    )

    with pytest.raises(DeliveryError) as caught:
        await send_email(
            config,
            to=["hoi-phu-yen@example.vn"],
            subject=SUBJECT,
            body=BODY,
            sent_at=datetime(2021, 11, 4, 1, tzinfo=UTC),
        )

    assert caught.value.retryable
    assert f"127.0.0.1:{config.port}" in caught.value.reason

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy

import pytest

from reminders.delivery.email import SmtpConfig, build_email

SUBJECT = "[Hội LHPN] Quá hạn 3 ngày: Báo cáo hoạt động chuyên đề năm 2021 – kỳ năm 2021"
BODY = "Kính gửi: Hội LHPN huyện Phú Hoà,\n\nĐơn vị chưa gửi báo cáo; đã trễ 3 ngày.\n"


def test_a_vietnamese_message_is_ascii_on_the_wire_and_decodes_back_identically():
    message = build_email(
        from_address="nhac-viec@lhpn.example.vn",
        to=["hoi-phu-hoa@example.vn", "can-bo@example.vn"],
        subject=SUBJECT,
        body=BODY,
        sent_at=datetime(2021, 11, 2, 1, tzinfo=UTC),
        headers={"X-LHPN-Ref": "PY-2021-460:thematic_annual:2021:563"},
    )

    wire = message.as_bytes(policy=policy.SMTP)
    parsed = message_from_bytes(wire, policy=policy.default)

    assert wire.isascii()
    assert b"=?utf-8?" in wire
    assert parsed["Subject"] == SUBJECT
    assert parsed.get_content().replace("\r\n", "\n") == BODY  # CRLF on the wire
    assert parsed.get_content_charset() == "utf-8"
    assert parsed["To"] == "hoi-phu-hoa@example.vn, can-bo@example.vn"
    assert parsed["X-LHPN-Ref"] == "PY-2021-460:thematic_annual:2021:563"
    assert parsed["Message-ID"].endswith("@lhpn.example.vn>")
    assert parsed["Date"] == "Tue, 02 Nov 2021 01:00:00 +0000"


def test_a_message_without_recipients_is_refused():
    with pytest.raises(ValueError, match="recipient"):
        build_email(from_address="a@b.vn", to=[], subject="x", body="y", sent_at=datetime.now(UTC))


def test_a_header_with_a_line_break_is_refused():
    with pytest.raises(ValueError, match="Subject header must be a single line"):
        build_email(
            from_address="a@b.vn",
            to=["c@d.vn"],
            subject="Nhắc việc\nBcc: x@y.vn",
            body="y",
            sent_at=datetime.now(UTC),
        )


def test_the_smtp_password_never_shows_in_logs():
    config = SmtpConfig(host="h", port=25, from_address="a@b.vn", username="u", password="bí-mật")

    assert "bí-mật" not in repr(config)

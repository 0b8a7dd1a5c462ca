"""E-mail over SMTP (SPEC §7): one UTF-8 plain-text message per call, with aiosmtplib."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.header import Header
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr

import aiosmtplib

from .errors import DeliveryError


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    from_address: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    start_tls: bool | None = None
    """True: require STARTTLS; False: never; None: use it when the server offers it."""
    use_tls: bool = False
    """Implicit TLS from the first byte (usually port 465)."""
    timeout: float = 30.0


def build_email(
    *,
    from_address: str,
    to: Sequence[str],
    subject: str,
    body: str,
    sent_at: datetime,
    headers: Mapping[str, str] | None = None,
) -> EmailMessage:
    """A plain-text UTF-8 message; non-ASCII headers are RFC 2047 encoded when sent."""
    if not to:
        raise ValueError("an e-mail needs at least one recipient")
    extra = dict(headers or {})
    for name, value in [("Subject", subject), *extra.items()]:
        if "\n" in value or "\r" in value:
            raise ValueError(f"the {name} header must be a single line")
    message = EmailMessage()
    message["From"] = from_address
    message["To"] = ", ".join(to)
    _set_text_header(message, "Subject", subject)
    message["Date"] = format_datetime(sent_at)
    message["Message-ID"] = make_msgid(domain=parseaddr(from_address)[1].rpartition("@")[2])
    for name, value in extra.items():
        _set_text_header(message, name, value)
    message.set_content(body, subtype="plain", charset="utf-8", cte="quoted-printable")
    return message


def _set_text_header(message: EmailMessage, name: str, value: str) -> None:
    """Store a free-text header so that every mail reader decodes it back identically.

    When it folds a long non-ASCII header, the e-mail package of this Python puts the space
    between two words outside the encoded words, and readers drop it ("Báo cáohoạt động";
    CPython gh-144156). `email.header.Header` encodes the spaces inside the words and folds
    to short lines, which the generator then writes as they are.
    """
    if value.isascii():
        message[name] = value
    else:
        message.set_raw(name, Header(value, "utf-8", header_name=name).encode())


async def send_email(
    config: SmtpConfig,
    *,
    to: Sequence[str],
    subject: str,
    body: str,
    sent_at: datetime,
    headers: Mapping[str, str] | None = None,
) -> str:
    """Send one message; returns its Message-ID. Raises DeliveryError when it was not accepted."""
    message = build_email(
        from_address=config.from_address,
        to=to,
        subject=subject,
        body=body,
        sent_at=sent_at,
        headers=headers,
    )
    try:
        await aiosmtplib.send(
            message,
            hostname=config.host,
            port=config.port,
            username=config.username,
            password=config.password,
            start_tls=config.start_tls,
            use_tls=config.use_tls,
            timeout=config.timeout,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        raise DeliveryError(f"SMTP refused every recipient: {exc}", retryable=False) from exc
    except aiosmtplib.SMTPResponseException as exc:
        # 5xx is a permanent refusal (bad address, policy); 4xx is worth trying again.
        raise DeliveryError(f"SMTP {exc.code}: {exc.message}", retryable=exc.code < 500) from exc
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"SMTP server {config.host}:{config.port}: {exc}") from exc
    return str(message["Message-ID"])

"""Where a unit's notifications go (SPEC §2, §7): e-mail addresses and an optional signed webhook.

What staff type here is not trusted:
- each item of `emails` is exactly one address (no lists in one item, no display names, no
  line breaks that would smuggle headers into a message);
- the webhook URL must reach a public address (`delivery.addresses`: checked here and at every
  delivery);
- the webhook secret is stored sealed (`WEBHOOK_SECRET_KEYS`, `lhpn_shared.crypto`), bound to
  its unit; a secret an older version stored in clear is still read, and `reseal_secrets`
  (`python -m reminders reencrypt`) moves every secret to the newest key.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, field_validator
from pymongo.asynchronous.collection import AsyncCollection

from lhpn_shared.crypto import Keyring, is_sealed
from lhpn_shared.mongo import Doc

SEALING_PURPOSE = "lhpn.reminders.webhook-secret.v1"

_ADDRESS = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)


def one_address(value: str) -> str:
    """Exactly one plain address, `local@domain.tld`, at most 254 characters."""
    address = value.strip()
    if len(address) > 254 or not _ADDRESS.match(address) or ".." in address:
        raise ValueError(
            "mỗi ô chỉ ghi đúng một địa chỉ e-mail, dạng ten@donvi.vn "
            "(không ghi nhiều địa chỉ, tên hiển thị hay dấu cách)"
        )
    return address


class Contacts(BaseModel):
    """Where a unit's notifications go (SPEC §2, §7)."""

    emails: list[Annotated[str, AfterValidator(one_address)]] = Field(
        default_factory=list, max_length=20, description="one address per item"
    )
    webhook_url: str | None = Field(
        default=None, max_length=2000, description="http(s) URL of a public address"
    )
    webhook_secret: str | None = Field(
        default=None, min_length=16, max_length=200, description="stored sealed, never shown"
    )

    @field_validator("emails")
    @classmethod
    def _distinct(cls, emails: list[str]) -> list[str]:
        return list(dict.fromkeys(emails))

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError("địa chỉ webhook phải bắt đầu bằng http:// hoặc https://")
        return url


def contacts_doc(unit_id: str, contacts: Contacts, keyring: Keyring) -> Doc:
    """The fields stored for `unit_id`: the webhook secret sealed."""
    doc: Doc = contacts.model_dump()
    if contacts.webhook_secret is not None:
        doc["webhook_secret"] = keyring.seal(
            contacts.webhook_secret, purpose=SEALING_PURPOSE, context=unit_id
        )
    return doc


def contacts_from_doc(doc: Doc, keyring: Keyring) -> Contacts:
    secret: Any = doc.get("webhook_secret")
    if is_sealed(secret):
        secret = keyring.open(
            secret,
            purpose=SEALING_PURPOSE,
            context=doc["_id"],
            where=f"webhook secret of unit {doc['_id']}",
        )
    # stored values were checked when they were given: read as they are (a rule made stricter
    # later must not stop the deliveries to addresses given before)
    return Contacts.model_construct(
        emails=list(doc.get("emails") or []),
        webhook_url=doc.get("webhook_url"),
        webhook_secret=secret,
    )


async def reseal_secrets(contacts: AsyncCollection[Doc], keyring: Keyring) -> dict[str, Any]:
    """Seal every stored webhook secret with the first key of `WEBHOOK_SECRET_KEYS` (and any an
    older version kept in clear), so an old key can be dropped (`python -m reminders reencrypt`).
    Idempotent; a secret replaced meanwhile is left to its new value (compare-and-swap)."""
    report: dict[str, Any] = {"current_key": keyring.current_kid, "units_examined": 0}
    report |= {"secrets_resealed": 0, "secrets_current": 0, "units_failed": []}
    async for doc in contacts.find({"webhook_secret": {"$ne": None}}).sort("_id", 1):
        report["units_examined"] += 1
        stored = doc["webhook_secret"]
        if is_sealed(stored) and not keyring.needs_rotation(stored):
            report["secrets_current"] += 1
            continue
        try:
            secret = contacts_from_doc(doc, keyring).webhook_secret
        except ValueError:  # DecryptionError: no listed key opens it
            report["units_failed"].append(doc["_id"])
            continue
        assert secret is not None
        sealed = keyring.seal(secret, purpose=SEALING_PURPOSE, context=doc["_id"])
        await contacts.update_one(
            {"_id": doc["_id"], "webhook_secret": stored}, {"$set": {"webhook_secret": sealed}}
        )
        report["secrets_resealed"] += 1
    return report

"""Field encryption of a case's personal data (SPEC §6: encrypted at rest): the requester, the
summary, the notes of the timeline and the reason a case was declined.

Each value is sealed by `lhpn_shared.crypto.Keyring` (AES-256-GCM) with the associated data
`lhpn.cases.requester.v1|<kid>|<case_id>|<field>`, so a value copied to another field or another
case does not open. A timeline note is bound to its entry (`timeline.<index>.note`): the
timeline only grows, so an entry keeps its index.

Keys come from `CASE_KEYS`, `"k2:<base64 32 bytes>,k1:<base64 32 bytes>"`: the first key
encrypts, every listed key decrypts. To rotate: put a new key first, run
`python -m cases reencrypt` (which calls `rotate()` on every stored value), then drop the old
key. Nothing here logs, and no error message carries a plaintext or a key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

from lhpn_shared.crypto import (
    DecryptionError,
    EncryptedValue,
    KeyConfigError,
    Keyring,
    StoredValue,
)

__all__ = [
    "CaseTextField",
    "DecryptionError",
    "EncryptedValue",
    "FieldCipher",
    "KeyConfigError",
    "RequesterField",
    "SealedField",
    "StoredValue",
    "TimelineNote",
]

_PURPOSE = "lhpn.cases.requester.v1"


class RequesterField(StrEnum):
    name = "name"
    phone = "phone"
    address = "address"
    birth_year = "birth_year"
    id_number = "id_number"


class CaseTextField(StrEnum):
    """Free text of a case that names people as often as not: sealed like the requester's."""

    summary = "summary"
    decline_reason = "decline_reason"


@dataclass(frozen=True)
class TimelineNote:
    """The note of the timeline entry at `index`."""

    index: int

    @property
    def value(self) -> str:
        return f"timeline.{self.index}.note"


SealedField = RequesterField | CaseTextField | TimelineNote


class FieldCipher:
    def __init__(self, keys: Mapping[str, bytes] | Keyring) -> None:
        """`keys` in order of preference: the first one encrypts."""
        self.keyring = keys if isinstance(keys, Keyring) else Keyring(keys)

    @classmethod
    def from_setting(cls, setting: str) -> FieldCipher:
        """Parse `"k2:<base64>,k1:<base64>"` (first = current)."""
        return cls(Keyring.from_setting(setting))

    @property
    def key_ids(self) -> tuple[str, ...]:
        return self.keyring.key_ids

    @property
    def current_kid(self) -> str:
        return self.keyring.current_kid

    def __repr__(self) -> str:
        return f"FieldCipher(key_ids={self.key_ids!r})"

    def encrypt(self, plaintext: str, *, case_id: UUID | str, field: SealedField) -> EncryptedValue:
        return self.keyring.seal(plaintext, purpose=_PURPOSE, context=_context(case_id, field))

    def decrypt(self, stored: StoredValue, *, case_id: UUID | str, field: SealedField) -> str:
        return self.keyring.open(
            stored,
            purpose=_PURPOSE,
            context=_context(case_id, field),
            where=f"field '{_sealed(field).value}' of case {case_id}",
        )

    def needs_rotation(self, stored: StoredValue) -> bool:
        return self.keyring.needs_rotation(stored)

    def rotate(
        self, stored: StoredValue, *, case_id: UUID | str, field: SealedField
    ) -> EncryptedValue:
        """The value sealed with the current key (unchanged if it already is)."""
        if not self.needs_rotation(stored):
            return {"kid": stored["kid"], "nonce": stored["nonce"], "ct": stored["ct"]}
        plaintext = self.decrypt(stored, case_id=case_id, field=field)
        return self.encrypt(plaintext, case_id=case_id, field=field)

    def encrypt_requester(
        self, requester: Mapping[str, str | int | None], *, case_id: UUID | str
    ) -> dict[str, EncryptedValue | None]:
        """Seal each known requester field (`birth_year` as its decimal digits); None stays None.
        An unknown field is refused, so nothing personal is stored in clear by mistake."""
        sealed: dict[str, EncryptedValue | None] = {}
        for name, value in requester.items():
            field = _field(name)
            sealed[field] = (
                None if value is None else self.encrypt(str(value), case_id=case_id, field=field)
            )
        return sealed

    def decrypt_requester(
        self, sealed: Mapping[str, StoredValue | None], *, case_id: UUID | str
    ) -> dict[str, str | int | None]:
        """The inverse of `encrypt_requester`: `birth_year` comes back as an int."""
        opened: dict[str, str | int | None] = {}
        for name, stored in sealed.items():
            field = _field(name)
            if stored is None:
                opened[field] = None
                continue
            value = self.decrypt(stored, case_id=case_id, field=field)
            opened[field] = int(value) if field is RequesterField.birth_year else value
        return opened


def _field(name: str) -> RequesterField:
    try:
        return RequesterField(name)
    except ValueError:
        raise ValueError(f"'{name}' is not a requester field") from None


def _sealed(field: SealedField | str) -> SealedField:
    """The field as its type (a plain string naming a requester field is accepted too)."""
    return field if isinstance(field, CaseTextField | TimelineNote) else RequesterField(field)


def _context(case_id: UUID | str, field: SealedField) -> str:
    """Case and field, so a value opens only where it was sealed. The case id is put in its
    canonical form, so the same case given as UUID or as string gives the same bytes."""
    case = case_id if isinstance(case_id, UUID) else UUID(case_id)
    return f"{case}|{_sealed(field).value}"

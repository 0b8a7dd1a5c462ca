"""Field encryption for the requester's personal data and the case summary (SPEC §6: encrypted
at rest).

Each value is sealed with AES-256-GCM (authenticated: any change to the stored bytes is
detected) under a fresh 96-bit random nonce. The associated data binds the ciphertext to its
case and field, so a value copied to another field or another case does not decrypt.

Keys come from one setting, `"k2:<base64 32 bytes>,k1:<base64 32 bytes>"`: the first key
encrypts, every listed key decrypts. To rotate: put a new key first, keep the old ones until
`rotate()` has re-encrypted every stored value, then drop them.

Stored form (JSON and BSON friendly): `{"kid": "k2", "nonce": "<b64>", "ct": "<b64>"}`.
Nothing here logs, and no error message carries a plaintext or a key.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import TypedDict
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_KEY_BYTES = 32
_NONCE_BYTES = 12
_KID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
_AD_PREFIX = "lhpn.cases.requester.v1"


class RequesterField(StrEnum):
    name = "name"
    phone = "phone"
    address = "address"
    birth_year = "birth_year"
    id_number = "id_number"


class CaseTextField(StrEnum):
    """Free text of a case that names people as often as not: sealed like the requester's."""

    summary = "summary"


SealedField = RequesterField | CaseTextField


class EncryptedValue(TypedDict):
    kid: str
    nonce: str
    ct: str


StoredValue = EncryptedValue | Mapping[str, str]
"""An encrypted value as read back (a TypedDict from here, a plain mapping from the database)."""


class KeyConfigError(ValueError):
    """The key setting is malformed; the message names the entry, never the key."""


class DecryptionError(ValueError):
    """A stored value could not be opened; the message names case, field and key id only."""


class FieldCipher:
    def __init__(self, keys: Mapping[str, bytes]) -> None:
        """`keys` in order of preference: the first one encrypts."""
        if not keys:
            raise KeyConfigError("no encryption key configured")
        for position, (kid, key) in enumerate(keys.items(), 1):
            _check_kid(position, kid)
            if len(key) != _KEY_BYTES:
                raise KeyConfigError(f"key {kid!r} must be {_KEY_BYTES} bytes (AES-256)")
        self._aead = {kid: AESGCM(key) for kid, key in keys.items()}
        self.current_kid = next(iter(keys))

    @classmethod
    def from_setting(cls, setting: str) -> FieldCipher:
        """Parse `"k2:<base64>,k1:<base64>"` (first = current)."""
        keys: dict[str, bytes] = {}
        for position, item in enumerate(filter(None, (p.strip() for p in setting.split(","))), 1):
            kid, sep, encoded = item.partition(":")
            kid = kid.strip()
            if not sep or not kid:
                raise KeyConfigError(f"key entry {position} must look like 'kid:base64key'")
            _check_kid(position, kid)
            if kid in keys:
                raise KeyConfigError(f"key id {kid!r} is listed twice")
            try:
                keys[kid] = base64.b64decode(encoded.strip(), validate=True)
            except (binascii.Error, ValueError):
                raise KeyConfigError(f"key {kid!r} is not valid base64") from None
        return cls(keys)

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._aead)

    def __repr__(self) -> str:
        return f"FieldCipher(key_ids={self.key_ids!r})"

    def encrypt(self, plaintext: str, *, case_id: UUID | str, field: SealedField) -> EncryptedValue:
        kid = self.current_kid
        nonce = os.urandom(_NONCE_BYTES)
        ct = self._aead[kid].encrypt(nonce, plaintext.encode(), _ad(kid, case_id, field))
        return {"kid": kid, "nonce": _b64(nonce), "ct": _b64(ct)}

    def decrypt(self, stored: StoredValue, *, case_id: UUID | str, field: SealedField) -> str:
        where = f"field '{_sealed(field).value}' of case {case_id}"
        try:
            kid, nonce, ct = stored["kid"], stored["nonce"], stored["ct"]
        except (KeyError, TypeError):
            raise DecryptionError(f"{where}: not an encrypted value") from None
        aead = self._aead.get(kid)
        if aead is None:
            raise DecryptionError(f"{where}: unknown key id {kid!r}")
        try:
            plain = aead.decrypt(_unb64(nonce), _unb64(ct), _ad(kid, case_id, field))
        except (InvalidTag, binascii.Error, ValueError):
            raise DecryptionError(
                f"{where}: authentication failed (altered, or copied from another field or case)"
            ) from None
        return plain.decode()

    def needs_rotation(self, stored: StoredValue) -> bool:
        return stored.get("kid") != self.current_kid

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


def _check_kid(position: int, kid: str) -> None:
    # The id is not echoed: a key pasted in its place would end up in the logs.
    if not _KID.match(kid):
        raise KeyConfigError(
            f"key entry {position}: the key id must be 1-32 letters, digits, '_', '.', '-'"
        )


def _field(name: str) -> RequesterField:
    try:
        return RequesterField(name)
    except ValueError:
        raise ValueError(f"'{name}' is not a requester field") from None


def _sealed(field: SealedField) -> SealedField:
    """The field as its enum (a plain string naming a requester field is accepted too)."""
    return field if isinstance(field, CaseTextField) else RequesterField(field)


def _ad(kid: str, case_id: UUID | str, field: SealedField) -> bytes:
    """Key id, case and field, so a value opens only where it was sealed. The case id is put in
    its canonical form, so the same case given as UUID or as string gives the same bytes."""
    case = case_id if isinstance(case_id, UUID) else UUID(case_id)
    return f"{_AD_PREFIX}|{kid}|{case}|{_sealed(field).value}".encode()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)

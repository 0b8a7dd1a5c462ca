"""Sealing values at rest with keys that can be rotated, for every service that keeps a secret
(cases: the requester's personal data; reminders: webhook secrets).

A value is sealed with AES-256-GCM (authenticated: any change to the stored bytes is detected)
under a fresh 96-bit random nonce. The associated data is `<purpose>|<key id>|<context>`: the
purpose names what is sealed (e.g. `lhpn.cases.requester.v1`), the context where it belongs
(e.g. the case and the field), so a value copied to another place does not open.

Keys come from one setting, `"k2:<base64 32 bytes>,k1:<base64 32 bytes>"`: the first key seals,
every listed key opens. To rotate: put a new key first, re-seal the stored values (each service
that keeps sealed values has a command for it), then drop the old key.

Stored form (JSON and BSON friendly): `{"kid": "k2", "nonce": "<b64>", "ct": "<b64>"}`.
Nothing here logs, and no error message carries a plaintext or a key.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from typing import Any, TypedDict, TypeGuard

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
_KID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


class EncryptedValue(TypedDict):
    kid: str
    nonce: str
    ct: str


StoredValue = EncryptedValue | Mapping[str, str]
"""A sealed value as read back (a TypedDict from here, a plain mapping from the database)."""


class KeyConfigError(ValueError):
    """The key setting is malformed; the message names the entry, never the key."""


class DecryptionError(ValueError):
    """A stored value could not be opened; the message says where and with which key id only."""


def is_sealed(value: Any) -> TypeGuard[StoredValue]:
    """True for a value in the stored form (as opposed to plain text kept by an older version)."""
    return isinstance(value, Mapping) and {"kid", "nonce", "ct"} <= set(value)


class Keyring:
    """The keys of one setting, in order of preference: the first one seals."""

    def __init__(self, keys: Mapping[str, bytes]) -> None:
        if not keys:
            raise KeyConfigError("no encryption key configured")
        for position, (kid, key) in enumerate(keys.items(), 1):
            _check_kid(position, kid)
            if len(key) != KEY_BYTES:
                raise KeyConfigError(f"key {kid!r} must be {KEY_BYTES} bytes (AES-256)")
        self._aead = {kid: AESGCM(key) for kid, key in keys.items()}
        self.current_kid = next(iter(keys))

    @classmethod
    def from_setting(cls, setting: str) -> Keyring:
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
        return f"Keyring(key_ids={self.key_ids!r})"

    def seal(self, plaintext: str, *, purpose: str, context: str) -> EncryptedValue:
        kid = self.current_kid
        nonce = os.urandom(NONCE_BYTES)
        ct = self._aead[kid].encrypt(nonce, plaintext.encode(), _ad(purpose, kid, context))
        return {"kid": kid, "nonce": _b64(nonce), "ct": _b64(ct)}

    def open(self, stored: StoredValue, *, purpose: str, context: str, where: str) -> str:
        """The plaintext; `where` names the value in an error (never its content)."""
        try:
            kid, nonce, ct = stored["kid"], stored["nonce"], stored["ct"]
        except (KeyError, TypeError):
            raise DecryptionError(f"{where}: not an encrypted value") from None
        aead = self._aead.get(kid)
        if aead is None:
            raise DecryptionError(f"{where}: unknown key id {kid!r}")
        try:
            plain = aead.decrypt(_unb64(nonce), _unb64(ct), _ad(purpose, kid, context))
        except (InvalidTag, binascii.Error, ValueError):
            raise DecryptionError(
                f"{where}: authentication failed (altered, or copied from another place)"
            ) from None
        return plain.decode()

    def needs_rotation(self, stored: StoredValue) -> bool:
        return stored.get("kid") != self.current_kid


def holds_development_key(setting: str, development_setting: str) -> bool:
    """True when a key setting holds the development key (even only for opening): every copy
    of this code knows it, so nothing it sealed is secret (refused in production)."""
    dev_keys = {entry.partition(":")[2].strip() for entry in development_setting.split(",")}
    keys = {entry.partition(":")[2].strip() for entry in setting.split(",")}
    return bool(dev_keys & keys)


def _check_kid(position: int, kid: str) -> None:
    # The id is not echoed: a key pasted in its place would end up in the logs.
    if not _KID.match(kid):
        raise KeyConfigError(
            f"key entry {position}: the key id must be 1-32 letters, digits, '_', '.', '-'"
        )


def _ad(purpose: str, kid: str, context: str) -> bytes:
    return f"{purpose}|{kid}|{context}".encode()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)

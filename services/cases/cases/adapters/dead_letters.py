"""A refused message on `cases.inbound` keeps no personal data readable in its dead-letter queue.

Other systems may publish `case.opened` without personal data (SPEC §9.1); one that sends a
requester, a summary or a name anyway is refused — and the refused message must not keep that
data in `cases.inbound.dlq`, where operators and monitoring read it. Before dead-lettering:

- in `data`, only the case facts whose values are what they claim to be (a UUID, a unit code,
  a known kind, topic, channel, status or flag, a date, a boolean, a number) stay in clear;
  every other field — `requester`, `summary`, anything unknown, a free-text "flag" — is
  replaced by `{"sealed": {"kid", "nonce", "ct"}}`, its JSON value sealed with the current case
  key (`CASE_KEYS`), bound to the message id and the field's path;
- of the envelope, the known metadata stays in clear (ids, type, version, source, unit, dates);
  anything else is sealed the same way;
- a body that is not a JSON object is sealed whole: `{"sealed_body": {…}}` (its bytes, base64).

The headers say what was done: `x-personal-data: sealed` and `x-sealed-fields` (the paths), or
`x-personal-data: sealed-body`. The rejection reason stays readable. `open_dead_letter` gives
back the original body to whoever holds the key; a message with nothing to seal is unchanged.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import StringConstraints, TypeAdapter, ValidationError

from lhpn_shared.contracts.cases import CaseChannel, CaseKind, CaseStatus, CaseTopic
from lhpn_shared.crypto import EncryptedValue, Keyring, StoredValue, is_sealed

from ..domain.flags import CaseFlag

PURPOSE = "lhpn.cases.dead-letter.v1"
PERSONAL_DATA_HEADER = "x-personal-data"
SEALED_FIELDS_HEADER = "x-sealed-fields"

_Code = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
_CLEAR_DATA: dict[str, TypeAdapter[Any]] = {
    "case_id": TypeAdapter(UUID),
    "unit_id": TypeAdapter(_Code),
    "kind": TypeAdapter(CaseKind),
    "topic": TypeAdapter(CaseTopic),
    "channel": TypeAdapter(CaseChannel),
    "status": TypeAdapter(CaseStatus),
    "received_on": TypeAdapter(date),
    "flags": TypeAdapter(list[CaseFlag]),
    "complex": TypeAdapter(bool),
    "remote_area": TypeAdapter(bool),
    "overdue": TypeAdapter(bool),
    "revision": TypeAdapter(int),
    "next_due_at": TypeAdapter(datetime | None),
}
"""The facts of `case.opened` that may stay readable, each with the shape its value must have."""
_CLEAR_ENVELOPE: dict[str, TypeAdapter[Any]] = {
    "event_id": TypeAdapter(UUID),
    "type": TypeAdapter(_Code),
    "version": TypeAdapter(int),
    "occurred_at": TypeAdapter(datetime),
    "source": TypeAdapter(_Code),
    "unit_id": TypeAdapter(_Code | None),
    "correlation_id": TypeAdapter(_Code | None),
}


class DeadLetterSealer:
    """The `DeadLetterFilter` of `cases.inbound` (see `lhpn_shared.broker.process_delivery`)."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    def __call__(self, body: bytes, message_id: str | None) -> tuple[bytes, dict[str, str]]:
        mid = message_id or ""
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            sealed = self._seal(base64.b64encode(body).decode("ascii"), mid, "")
            return _dump({"sealed_body": sealed}), {PERSONAL_DATA_HEADER: "sealed-body"}
        paths: list[str] = []
        out: dict[str, Any] = {}
        for key, value in doc.items():
            if key == "data" and isinstance(value, dict):
                out[key] = {}
                for name, item in value.items():
                    out[key][name] = self._keep_or_seal(
                        _CLEAR_DATA, name, item, mid, f"data.{name}", paths
                    )
            else:
                out[key] = self._keep_or_seal(_CLEAR_ENVELOPE, key, value, mid, key, paths)
        if not paths:
            return body, {}
        return _dump(out), {
            PERSONAL_DATA_HEADER: "sealed",
            SEALED_FIELDS_HEADER: ",".join(paths),
        }

    def _keep_or_seal(
        self,
        clear: dict[str, TypeAdapter[Any]],
        name: str,
        value: Any,
        message_id: str,
        path: str,
        paths: list[str],
    ) -> Any:
        adapter = clear.get(name)
        if adapter is not None:
            try:
                adapter.validate_python(value)
                return value
            except ValidationError:
                pass
        paths.append(path)
        plain = json.dumps(value, ensure_ascii=False)
        return {"sealed": self._seal(plain, message_id, path)}

    def _seal(self, plaintext: str, message_id: str, path: str) -> EncryptedValue:
        return self.keyring.seal(plaintext, purpose=PURPOSE, context=f"{message_id}|{path}")


def open_dead_letter(
    keyring: Keyring, body: bytes, headers: dict[str, Any], message_id: str | None
) -> bytes:
    """The body as it was published, from a dead letter sealed by `DeadLetterSealer` (for an
    operator holding `CASE_KEYS` who must look at it or publish it again). Every sealed value is
    found where it stands (the header lists the paths for people to read)."""
    mid = message_id or ""
    kind = headers.get(PERSONAL_DATA_HEADER)
    if kind is None:
        return body
    doc = json.loads(body)
    if kind == "sealed-body":
        return base64.b64decode(_open(keyring, doc["sealed_body"], mid, ""))

    def opened(value: Any, path: str) -> Any:
        if isinstance(value, dict) and set(value) == {"sealed"} and is_sealed(value["sealed"]):
            return json.loads(_open(keyring, value["sealed"], mid, path))
        return value

    out = {key: opened(value, key) for key, value in doc.items()}
    if isinstance(out.get("data"), dict):
        out["data"] = {k: opened(v, f"data.{k}") for k, v in out["data"].items()}
    return _dump(out)


def _open(keyring: Keyring, stored: StoredValue, message_id: str, path: str) -> str:
    return keyring.open(
        stored,
        purpose=PURPOSE,
        context=f"{message_id}|{path}",
        where=f"dead letter {message_id} {path or 'body'}",
    )


def _dump(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def opener(
    keyring: Keyring,
) -> Callable[[bytes, dict[str, Any], str | None], tuple[bytes, list[str]]]:
    """For a replay (`lhpn_shared.dead_letters`): the body as first published, and the headers
    that described the sealing (no longer true of it)."""

    def open_(
        body: bytes, headers: dict[str, Any], message_id: str | None
    ) -> tuple[bytes, list[str]]:
        return open_dead_letter(keyring, body, headers, message_id), [
            PERSONAL_DATA_HEADER,
            SEALED_FIELDS_HEADER,
        ]

    return open_

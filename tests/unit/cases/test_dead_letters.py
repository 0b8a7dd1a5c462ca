"""What a refused `cases.inbound` message keeps readable in its dead-letter queue: the facts that
are what they claim to be; everything else sealed with the case key, bound to the message."""

from __future__ import annotations

import base64
import json
import os
import uuid
from typing import Any

import pytest

from cases.adapters.dead_letters import (
    PERSONAL_DATA_HEADER,
    SEALED_FIELDS_HEADER,
    DeadLetterSealer,
    open_dead_letter,
)
from lhpn_shared.crypto import DecryptionError, Keyring

NAME = "Phạm Thị Kín Đáo"


def make_keyring() -> Keyring:
    return Keyring({"k1": os.urandom(32)})


def make_envelope(**data: Any) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "type": "case.opened",
        "version": 1,
        "occurred_at": "2021-03-01T10:00:00+07:00",
        "source": "hotline-1900",
        "unit_id": "22015",
        "correlation_id": None,
        "data": {
            "case_id": str(uuid.uuid4()),
            "unit_id": "22015",
            "kind": "petition",
            "topic": "land",
            "channel": "hotline",
            "status": "received",
            "received_on": "2021-03-01",
            "flags": ["poor_household"],
            **data,
        },
    }


def dead_letter(doc: Any, keyring: Keyring, mid: str = "m-1") -> tuple[bytes, dict[str, str]]:
    return DeadLetterSealer(keyring)(json.dumps(doc).encode(), mid)


def test_a_message_of_facts_only_is_kept_as_it_is() -> None:
    body = json.dumps(make_envelope()).encode()
    assert DeadLetterSealer(make_keyring())(body, "m-1") == (body, {})


@pytest.mark.parametrize(
    ("data", "sealed"),
    [
        ({"requester": {"name": NAME}}, "data.requester"),
        ({"summary": f"Chị {NAME}"}, "data.summary"),
        ({"flags": [NAME]}, "data.flags"),
        ({"unit_id": NAME}, "data.unit_id"),
        ({"kind": NAME}, "data.kind"),
        ({"ghi_chu": NAME}, "data.ghi_chu"),
    ],
)
def test_a_field_that_could_name_a_person_is_sealed_and_opens_back(
    data: dict[str, Any], sealed: str
) -> None:
    keyring = make_keyring()
    envelope = make_envelope(**data)
    body, headers = dead_letter(envelope, keyring)
    assert NAME not in body.decode() and json.dumps(NAME)[1:-1] not in body.decode()
    assert headers == {PERSONAL_DATA_HEADER: "sealed", SEALED_FIELDS_HEADER: sealed}
    assert json.loads(body)["data"]["case_id"] == envelope["data"]["case_id"]
    assert json.loads(open_dead_letter(keyring, body, headers, "m-1")) == envelope


@pytest.mark.parametrize(
    "doc",
    [
        {**make_envelope(), "data": f"Chị {NAME}"},
        {**make_envelope(), "source": f"{NAME} gọi điện"},
        {**make_envelope(), "requester": NAME},
    ],
    ids=["data-not-an-object", "free-text-source", "unknown-envelope-field"],
)
def test_the_envelope_keeps_only_its_known_metadata_in_clear(doc: dict[str, Any]) -> None:
    keyring = make_keyring()
    body, headers = dead_letter(doc, keyring)
    assert NAME not in body.decode() and headers[PERSONAL_DATA_HEADER] == "sealed"
    assert json.loads(open_dead_letter(keyring, body, headers, "m-1")) == doc


@pytest.mark.parametrize(
    "body",
    [b"\xff\xfe not utf-8 " + NAME.encode(), f'["{NAME}"]'.encode(), b"null", b""],
    ids=["not-utf8", "a-list", "null", "empty"],
)
def test_a_body_that_is_not_a_json_object_is_sealed_whole(body: bytes) -> None:
    keyring = make_keyring()
    kept, headers = DeadLetterSealer(keyring)(body, "m-1")
    assert headers == {PERSONAL_DATA_HEADER: "sealed-body"}
    assert NAME.encode() not in kept and set(json.loads(kept)) == {"sealed_body"}
    assert open_dead_letter(keyring, kept, headers, "m-1") == body


def test_a_sealed_value_is_bound_to_its_message_and_to_the_key() -> None:
    keyring = make_keyring()
    body, headers = dead_letter(make_envelope(summary=NAME), keyring, mid="m-1")
    with pytest.raises(DecryptionError):
        open_dead_letter(keyring, body, headers, "m-2")
    with pytest.raises(DecryptionError):
        open_dead_letter(make_keyring(), body, headers, "m-1")
    sealed = json.loads(body)["data"]["summary"]["sealed"]
    assert sealed["kid"] == "k1" and len(base64.b64decode(sealed["nonce"])) == 12

"""Field encryption of the requester's personal data: round trip, tampering, binding, rotation."""

from __future__ import annotations

import base64
import json
from uuid import uuid4

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cases.adapters.crypto import (
    CaseTextField,
    DecryptionError,
    FieldCipher,
    KeyConfigError,
    RequesterField,
)

F = RequesterField
NAME = "Nguyễn Thị Hồng Nhung"
ADDRESS = "Số 12, ngõ 34, phường Láng Hạ, quận Đống Đa, Hà Nội"


def make_key() -> str:
    return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()


def make_cipher(*kids: str) -> tuple[FieldCipher, dict[str, str]]:
    keys = {kid: make_key() for kid in kids or ("k1",)}
    return FieldCipher.from_setting(",".join(f"{k}:{v}" for k, v in keys.items())), keys


def test_vietnamese_text_round_trips() -> None:
    cipher, _ = make_cipher()
    case_id = uuid4()
    for field, value in [(F.name, NAME), (F.address, ADDRESS), (F.phone, "0912 345 678")]:
        stored = cipher.encrypt(value, case_id=case_id, field=field)
        assert cipher.decrypt(stored, case_id=case_id, field=field) == value


def test_the_stored_form_is_a_small_json_dict_without_the_plaintext() -> None:
    cipher, keys = make_cipher()
    stored = cipher.encrypt(NAME, case_id=uuid4(), field=F.name)

    assert set(stored) == {"kid", "nonce", "ct"}
    assert stored["kid"] == "k1"
    text = json.dumps(stored)
    assert NAME not in json.loads(text).values()
    assert NAME.encode() not in base64.b64decode(stored["ct"])
    assert "Nhung" not in text and keys["k1"] not in text
    assert len(base64.b64decode(stored["nonce"])) == 12


def test_the_same_value_encrypts_differently_each_time() -> None:
    cipher, _ = make_cipher()
    case_id = uuid4()
    first = cipher.encrypt(NAME, case_id=case_id, field=F.name)
    second = cipher.encrypt(NAME, case_id=case_id, field=F.name)
    assert first["nonce"] != second["nonce"] and first["ct"] != second["ct"]


def test_an_altered_ciphertext_is_detected_and_the_error_shows_no_plaintext() -> None:
    cipher, _ = make_cipher()
    case_id = uuid4()
    stored = cipher.encrypt(NAME, case_id=case_id, field=F.name)
    raw = bytearray(base64.b64decode(stored["ct"]))
    raw[0] ^= 1
    tampered = {**stored, "ct": base64.b64encode(bytes(raw)).decode()}

    with pytest.raises(DecryptionError) as refused:
        cipher.decrypt(tampered, case_id=case_id, field=F.name)

    assert "authentication failed" in str(refused.value)
    assert NAME not in str(refused.value) and "Nhung" not in str(refused.value)
    assert refused.value.__cause__ is None


def test_an_altered_nonce_is_detected() -> None:
    cipher, _ = make_cipher()
    case_id = uuid4()
    stored = cipher.encrypt(NAME, case_id=case_id, field=F.name)
    other_nonce = base64.b64encode(bytes(12)).decode()
    with pytest.raises(DecryptionError):
        cipher.decrypt({**stored, "nonce": other_nonce}, case_id=case_id, field=F.name)


def test_a_value_moved_to_another_field_does_not_decrypt() -> None:
    cipher, _ = make_cipher()
    case_id = uuid4()
    stored = cipher.encrypt("012345678901", case_id=case_id, field=F.id_number)
    with pytest.raises(DecryptionError):
        cipher.decrypt(stored, case_id=case_id, field=F.phone)


def test_a_value_moved_to_another_case_does_not_decrypt() -> None:
    cipher, _ = make_cipher()
    stored = cipher.encrypt(NAME, case_id=uuid4(), field=F.name)
    with pytest.raises(DecryptionError):
        cipher.decrypt(stored, case_id=uuid4(), field=F.name)


def test_a_case_id_given_as_uuid_or_string_is_the_same_case() -> None:
    cipher, _ = make_cipher()
    case_id = uuid4()
    stored = cipher.encrypt(NAME, case_id=case_id, field=F.name)
    assert cipher.decrypt(stored, case_id=str(case_id).upper(), field=F.name) == NAME


def test_after_rotation_the_old_key_still_decrypts_and_rotate_moves_to_the_new_key() -> None:
    old_key = make_key()
    new_key = make_key()
    before = FieldCipher.from_setting(f"k1:{old_key}")
    after = FieldCipher.from_setting(f"k2:{new_key},k1:{old_key}")
    case_id = uuid4()
    stored = before.encrypt(ADDRESS, case_id=case_id, field=F.address)

    assert after.decrypt(stored, case_id=case_id, field=F.address) == ADDRESS
    assert after.needs_rotation(stored)

    rotated = after.rotate(stored, case_id=case_id, field=F.address)
    assert rotated["kid"] == "k2"
    assert not after.needs_rotation(rotated)
    assert after.rotate(rotated, case_id=case_id, field=F.address) == rotated
    only_new = FieldCipher.from_setting(f"k2:{new_key}")
    assert only_new.decrypt(rotated, case_id=case_id, field=F.address) == ADDRESS


def test_new_values_are_sealed_with_the_first_listed_key() -> None:
    cipher, _ = make_cipher("k3", "k2", "k1")
    assert cipher.current_kid == "k3"
    assert cipher.encrypt(NAME, case_id=uuid4(), field=F.name)["kid"] == "k3"


def test_a_value_under_an_unknown_key_id_is_refused_by_name() -> None:
    old, _ = make_cipher("k1")
    new, _ = make_cipher("k2")
    case_id = uuid4()
    stored = old.encrypt(NAME, case_id=case_id, field=F.name)
    with pytest.raises(DecryptionError, match="unknown key id 'k1'"):
        new.decrypt(stored, case_id=case_id, field=F.name)


def test_a_requester_is_sealed_field_by_field_and_opened_with_its_types() -> None:
    cipher, _ = make_cipher()
    case_id = uuid4()
    requester: dict[str, str | int | None] = {
        "name": NAME,
        "phone": "0912345678",
        "address": ADDRESS,
        "birth_year": 1988,
        "id_number": None,
    }
    sealed = cipher.encrypt_requester(requester, case_id=case_id)

    assert sealed["id_number"] is None
    assert NAME not in json.dumps(sealed, ensure_ascii=False)
    assert cipher.decrypt_requester(sealed, case_id=case_id) == requester


def test_an_unknown_requester_field_is_refused() -> None:
    cipher, _ = make_cipher()
    with pytest.raises(ValueError, match="not a requester field"):
        cipher.encrypt_requester({"email": "a@b.vn"}, case_id=uuid4())


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("", "no encryption key"),
        ("k1", "must look like 'kid:base64key'"),
        ("k1:not base64!", "not valid base64"),
        (f"k1:{base64.b64encode(b'short').decode()}", "32 bytes"),
        ("k1:{key},k1:{key}", "listed twice"),
        ("bad id:{key}", "key entry 1: the key id"),
        ("{key}:k1", "key entry 1: the key id"),
    ],
)
def test_a_malformed_key_setting_is_refused_without_showing_the_key(
    setting: str, complaint: str
) -> None:
    key = make_key()
    with pytest.raises(KeyConfigError, match=complaint) as refused:
        FieldCipher.from_setting(setting.format(key=key))
    assert key not in str(refused.value)


def test_the_cipher_shows_key_ids_but_not_keys() -> None:
    cipher, keys = make_cipher("k2", "k1")
    assert repr(cipher) == "FieldCipher(key_ids=('k2', 'k1'))"
    assert all(key not in repr(cipher) for key in keys.values())


def test_a_case_summary_is_sealed_and_bound_to_its_field() -> None:
    cipher, _ = make_cipher()
    case_id = uuid4()
    stored = cipher.encrypt(NAME, case_id=case_id, field=CaseTextField.summary)
    assert cipher.decrypt(stored, case_id=case_id, field=CaseTextField.summary) == NAME
    with pytest.raises(DecryptionError, match="field 'name'"):
        cipher.decrypt(stored, case_id=case_id, field=F.name)

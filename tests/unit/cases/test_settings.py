"""The cases settings: usable keys, and the development key refused in production."""

from __future__ import annotations

import base64
import os
from typing import Any

import pytest
from pydantic import ValidationError

from cases.settings import DEV_CASE_KEYS, CasesSettings
from lhpn_shared.contracts.cases import CaseKind

PRODUCTION: dict[str, Any] = {
    "env": "production",
    "jwt_secret": "a-production-secret-of-at-least-32-chars",
    "admin_password": "a-production-admin-password",
    "broker_user_prefix": "lhpn-",
    "rabbit_url": "amqp://lhpn-cases:pw@rabbit:5672/",
    "mongo_url": "mongodb://lhpn:pw@mongo:27017/?authSource=admin",
}


def make_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def test_development_starts_with_the_development_key() -> None:
    settings = CasesSettings()
    assert settings.case_keys.get_secret_value() == DEV_CASE_KEYS
    assert settings.cipher().key_ids == ("dev",)
    assert settings.cases_port == 8002 and settings.database == "cases"


def test_production_refuses_the_development_key_even_kept_for_decryption() -> None:
    for keys in (DEV_CASE_KEYS, f"k2:{make_key()},{DEV_CASE_KEYS}"):
        with pytest.raises(ValidationError, match="CASE_KEYS holds the development key"):
            CasesSettings(**PRODUCTION, case_keys=keys)


def test_production_starts_with_its_own_keys() -> None:
    settings = CasesSettings(**PRODUCTION, case_keys=f"k2:{make_key()},k1:{make_key()}")
    assert settings.cipher().key_ids == ("k2", "k1")


def test_a_malformed_key_setting_is_refused_without_showing_it() -> None:
    secret = base64.b64encode(b"too short").decode()
    with pytest.raises(ValidationError, match="CASE_KEYS: key 'k1' must be 32 bytes") as refused:
        CasesSettings(case_keys=f"k1:{secret}")
    assert secret not in str(refused.value)


def test_the_keys_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    key = make_key()
    monkeypatch.setenv("CASE_KEYS", f"k9:{key}")
    monkeypatch.setenv("CASES_PORT", "9002")
    settings = CasesSettings()
    assert settings.cipher().key_ids == ("k9",) and settings.cases_port == 9002
    assert key not in repr(settings)


def test_deadline_rules_are_configurable_per_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASE_DEADLINES", '{"kinds": {"petition": {"resolve_within_days": 15}}}')
    rules = CasesSettings().case_deadlines
    assert rules.for_kind(CaseKind.petition).resolve_within_days == 15
    assert rules.for_kind(CaseKind.complaint).resolve_within_days == 30  # the legal default stays


def test_empty_variables_count_as_not_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASE_KEYS", "")
    monkeypatch.setenv("CASE_DEADLINES", "")
    assert CasesSettings().case_keys.get_secret_value() == DEV_CASE_KEYS
    monkeypatch.setenv("ENV", "production")
    with pytest.raises(ValidationError, match="CASE_KEYS holds the development key"):
        CasesSettings(**{k: v for k, v in PRODUCTION.items() if k != "env"})

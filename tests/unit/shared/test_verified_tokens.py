"""The authenticator checks a token's signature once and remembers the verdict; expiry and
revocation (the service's copy of the access records) are still judged on every request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest
from fastapi import HTTPException

from lhpn_shared.accounts import AccessRegistry
from lhpn_shared.auth import Authenticator, issue_token
from lhpn_shared.clock import FixedClock
from lhpn_shared.contracts.access import UserAccess
from lhpn_shared.principal import Principal, Role
from lhpn_shared.settings import ServiceSettings

NOW = datetime(2021, 3, 5, 9, 0, tzinfo=UTC)
SETTINGS = ServiceSettings(jwt_ttl_minutes=10)
LAN = Principal(subject="lan", role=Role.district_staff, unit_id="555")


def user(session_version: int = 0, enabled: bool = True, revision: int = 1) -> UserAccess:
    return UserAccess(
        username="lan",
        role=Role.district_staff,
        unit_id="555",
        enabled=enabled,
        session_version=session_version,
        revision=revision,
        updated_at=NOW,
    )


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tokens whose signature was checked (PyJWT's decode called)."""
    seen: list[str] = []
    decode = jwt.decode

    def counting(token: str, *args: object, **kwargs: object) -> object:
        seen.append(token)
        return decode(token, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(jwt, "decode", counting)
    return seen


def authenticator(clock: FixedClock) -> tuple[Authenticator, AccessRegistry]:
    registry = AccessRegistry()
    registry.load([user()], [])
    return Authenticator(SETTINGS, clock, registry), registry


def test_a_token_used_again_is_not_verified_again(decodes: list[str]) -> None:
    auth, _ = authenticator(FixedClock(NOW))
    token, _ = issue_token(SETTINGS, LAN, NOW)
    for _ in range(5):
        assert auth.authenticate(token, None).subject == "lan"
    assert decodes == [token]


def test_a_remembered_token_still_expires_on_time(decodes: list[str]) -> None:
    clock = FixedClock(NOW)
    auth, _ = authenticator(clock)
    token, _ = issue_token(SETTINGS, LAN, NOW)
    auth.authenticate(token, None)
    clock.set(NOW + timedelta(minutes=10))
    with pytest.raises(HTTPException) as refused:
        auth.authenticate(token, None)
    assert refused.value.status_code == 401
    assert "hết hạn" in str(refused.value.detail)


def test_a_remembered_token_is_refused_as_soon_as_its_session_is_revoked() -> None:
    auth, registry = authenticator(FixedClock(NOW))
    token, _ = issue_token(SETTINGS, LAN, NOW)
    auth.authenticate(token, None)
    registry.apply_user(user(session_version=1, revision=2))  # e.g. a password reset
    with pytest.raises(HTTPException) as refused:
        auth.authenticate(token, None)
    assert refused.value.status_code == 401
    registry.apply_user(user(session_version=1, enabled=False, revision=3))
    fresh, _ = issue_token(SETTINGS, LAN, NOW, session_version=1)
    with pytest.raises(HTTPException) as disabled:
        auth.authenticate(fresh, None)
    assert "khóa" in str(disabled.value.detail)


def test_a_refused_signature_is_not_remembered_and_stays_refused(decodes: list[str]) -> None:
    auth, _ = authenticator(FixedClock(NOW))
    other = ServiceSettings(jwt_secret="another-secret-entirely-xxxxxxxxx")
    forged, _ = issue_token(other, LAN, NOW)
    for _ in range(2):
        with pytest.raises(HTTPException) as refused:
            auth.authenticate(forged, None)
        assert refused.value.status_code == 401
    assert decodes == [forged, forged]

"""Bearer-token and API-key verification used by every service (SPEC §9.2–§9.3).

Tokens are HS256 JWTs issued by intake (`POST /api/v1/auth/token`) with the principal's role,
unit and session version (`sv`). Systems use `X-API-Key`: keys managed through intake's API
(known here through `lhpn_shared.accounts`), or the `API_KEYS` bootstrap. Who may call which
route is declared next to each route (`lhpn_shared.access`).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta
from typing import Annotated

import jwt
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from .accounts import AccessRegistry, key_principal
from .clock import Clock
from .contracts.units import UnitTree
from .principal import STAFF_ROLES, Principal, Role
from .settings import ServiceSettings

__all__ = [
    "STAFF_ROLES",
    "Authenticator",
    "Principal",
    "Role",
    "can_access_unit",
    "issue_token",
    "verify_token",
]

ISSUER = "lhpn-intake"


def issue_token(
    settings: ServiceSettings, principal: Principal, now: datetime, session_version: int = 0
) -> tuple[str, int]:
    ttl = timedelta(minutes=settings.jwt_ttl_minutes)
    claims = {
        "iss": ISSUER,
        "sub": principal.subject,
        "role": principal.role.value,
        "unit_id": principal.unit_id,
        "sv": session_version,
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
    }
    token = jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")
    return token, int(ttl.total_seconds())


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


def verify_token(settings: ServiceSettings, token: str, now: datetime) -> Principal:
    return verify_token_version(settings, token, now)[0]


def verify_token_version(
    settings: ServiceSettings, token: str, now: datetime
) -> tuple[Principal, int]:
    """The token's principal and session version, or 401."""
    principal, version, expires = _verified_claims(settings, token)
    if expires <= now.timestamp():
        raise _unauthorized("Phiên đăng nhập đã hết hạn, vui lòng đăng nhập lại.")
    return principal, version


def _verified_claims(settings: ServiceSettings, token: str) -> tuple[Principal, int, int]:
    """What a token's signature vouches for — principal, session version, expiry (seconds) —
    whatever the time; or 401."""
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret.get_secret_value(),
            algorithms=["HS256"],
            issuer=ISSUER,
            options={"require": ["exp", "sub", "iss"], "verify_exp": False},
        )
    except jwt.PyJWTError as exc:
        raise _unauthorized("Mã truy cập không hợp lệ.") from exc
    try:
        principal = Principal(
            subject=claims["sub"], role=Role(claims["role"]), unit_id=claims.get("unit_id")
        )
        return principal, int(claims.get("sv", 0)), int(claims["exp"])
    except (ValueError, TypeError) as exc:
        raise _unauthorized("Mã truy cập không hợp lệ.") from exc


VERIFIED_TOKENS_KEPT = 4096
"""Tokens whose signature an `Authenticator` remembers having checked (by their hash)."""


class _VerifiedTokens:
    """Tokens whose signature was checked, by their SHA-256, with what it vouched for: a token
    used again (every request of a signed-in client) skips the HMAC and the claims' parsing.

    Only the signature's verdict is kept — a pure function of the token and the secret. The
    expiry is compared with the clock, and the access records (disabled user, new session
    version, changed role) are asked, on every request as before, so revocation takes effect
    exactly when it did. Refused tokens are not kept; at `limit` entries the oldest half goes."""

    def __init__(self, limit: int = VERIFIED_TOKENS_KEPT) -> None:
        self._limit = limit
        self._by_hash: dict[bytes, tuple[Principal, int, int]] = {}

    def verify(self, settings: ServiceSettings, token: str, now: datetime) -> tuple[Principal, int]:
        key = hashlib.sha256(token.encode()).digest()
        claims = self._by_hash.get(key)
        if claims is None:
            claims = _verified_claims(settings, token)
            if len(self._by_hash) >= self._limit:
                for old in list(self._by_hash)[: self._limit // 2]:
                    del self._by_hash[old]
            self._by_hash[key] = claims
        principal, version, expires = claims
        if expires <= now.timestamp():
            del self._by_hash[key]
            raise _unauthorized("Phiên đăng nhập đã hết hạn, vui lòng đăng nhập lại.")
        return principal, version


BEARER = HTTPBearer(auto_error=False)
API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False)


class Authenticator:
    """The caller's Principal from a bearer token or an API key, or 401.

    Asks the service's `AccessRegistry` on every request, so a disabled user, a changed role or
    a revoked key is refused as soon as this service knows of it."""

    def __init__(
        self, settings: ServiceSettings, clock: Clock, registry: AccessRegistry | None = None
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._bootstrap_keys = settings.parsed_api_keys()
        if registry is None:
            registry = AccessRegistry()
            registry.loaded = True
        self.registry = registry
        self._tokens = _VerifiedTokens()

    def authenticate(self, bearer: str | None, api_key: str | None) -> Principal:
        if bearer is not None:
            principal, version = self._tokens.verify(self._settings, bearer, self._clock.now())
            self._registry_ready()
            refusal = self.registry.token_refusal(principal, version)
            if refusal is not None:
                raise _unauthorized(refusal)
            return principal
        if api_key is not None:
            self._registry_ready()
            managed = self.registry.managed_key(api_key)
            if managed is not None:
                if managed.revoked:
                    raise _unauthorized("Khóa API đã bị thu hồi.")
                return key_principal(managed)
            for key, (name, unit_id) in self._bootstrap_keys.items():
                if hmac.compare_digest(key.encode(), api_key.encode()):
                    return Principal(subject=f"system:{name}", role=Role.system, unit_id=unit_id)
            raise _unauthorized("Khóa API không hợp lệ.")
        raise _unauthorized("Cần đăng nhập (Bearer token) hoặc khóa API (X-API-Key).")

    def _registry_ready(self) -> None:
        """Until this service has read its copy of the access records, it cannot tell a revoked
        credential from a valid one: 503, try again shortly."""
        if not self.registry.loaded:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                detail="Dịch vụ đang khởi động, vui lòng thử lại sau ít giây.",
                headers={"Retry-After": "5"},
            )

    async def __call__(
        self,
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
        api_key: Annotated[str | None, Depends(API_KEY)],
    ) -> Principal:
        return self.authenticate(bearer.credentials if bearer else None, api_key)


def can_access_unit(principal: Principal, unit_id: str, tree: UnitTree) -> bool:
    """Admins everywhere; staff and systems within their unit's subtree."""
    if principal.is_admin:
        return True
    if principal.unit_id is None:
        return False
    return tree.is_within(unit_id, principal.unit_id)

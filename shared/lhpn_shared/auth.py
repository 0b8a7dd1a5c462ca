"""Bearer-token and API-key verification used by every service (SPEC §9.2–§9.3).

Tokens are HS256 JWTs issued by intake (`POST /api/v1/auth/token`) with the principal's role
and unit. Systems use `X-API-Key` (keys from settings), scoped to a unit like staff.
"""

from __future__ import annotations

import hmac
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated

import jwt
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from .clock import Clock
from .contracts.units import UnitTree
from .settings import ServiceSettings

ISSUER = "lhpn-intake"


class Role(StrEnum):
    admin = "admin"
    province_staff = "province_staff"
    district_staff = "district_staff"
    commune_staff = "commune_staff"
    viewer = "viewer"
    system = "system"


STAFF_ROLES = frozenset({Role.province_staff, Role.district_staff, Role.commune_staff})


class Principal(BaseModel):
    subject: str
    role: Role
    unit_id: str | None = None
    allowed_events: frozenset[str] | None = None
    """routing keys a system may send (None: no restriction beyond its role)"""
    allowed_routes: frozenset[str] | None = None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.admin


def issue_token(settings: ServiceSettings, principal: Principal, now: datetime) -> tuple[str, int]:
    ttl = timedelta(minutes=settings.jwt_ttl_minutes)
    claims = {
        "iss": ISSUER,
        "sub": principal.subject,
        "role": principal.role.value,
        "unit_id": principal.unit_id,
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
    if int(claims["exp"]) <= now.timestamp():
        raise _unauthorized("Phiên đăng nhập đã hết hạn, vui lòng đăng nhập lại.")
    try:
        return Principal(
            subject=claims["sub"], role=Role(claims["role"]), unit_id=claims.get("unit_id")
        )
    except ValueError as exc:
        raise _unauthorized("Mã truy cập không hợp lệ.") from exc


_bearer = HTTPBearer(auto_error=False)
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False)


class Authenticator:
    """FastAPI dependency: the caller's Principal, or 401."""

    def __init__(self, settings: ServiceSettings, clock: Clock) -> None:
        self._settings = settings
        self._clock = clock
        self._keys = settings.parsed_api_keys()

    async def __call__(
        self,
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        api_key: Annotated[str | None, Depends(_api_key)],
    ) -> Principal:
        if bearer is not None:
            return verify_token(self._settings, bearer.credentials, self._clock.now())
        if api_key is not None:
            for key, (name, unit_id) in self._keys.items():
                if hmac.compare_digest(key.encode(), api_key.encode()):
                    return Principal(subject=f"system:{name}", role=Role.system, unit_id=unit_id)
            raise _unauthorized("Khóa API không hợp lệ.")
        raise _unauthorized("Cần đăng nhập (Bearer token) hoặc khóa API (X-API-Key).")


def forbidden(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_403_FORBIDDEN, detail=detail)


def can_access_unit(principal: Principal, unit_id: str, tree: UnitTree) -> bool:
    """Admins everywhere; staff and systems within their unit's subtree."""
    if principal.is_admin:
        return True
    if principal.unit_id is None:
        return False
    return tree.is_within(unit_id, principal.unit_id)


def require_write(principal: Principal, unit_id: str, tree: UnitTree) -> None:
    if principal.role is Role.viewer:
        raise forbidden("Tài khoản xem (viewer) chỉ được xem số liệu tổng hợp.")
    if not can_access_unit(principal, unit_id, tree):
        raise forbidden(f"Bạn không có quyền ghi dữ liệu cho đơn vị {unit_id}.")


def require_read(principal: Principal, unit_id: str, tree: UnitTree) -> None:
    if principal.role is Role.viewer:
        raise forbidden("Tài khoản xem (viewer) chỉ được xem số liệu tổng hợp.")
    if not can_access_unit(principal, unit_id, tree):
        raise forbidden(f"Bạn không có quyền xem dữ liệu của đơn vị {unit_id}.")


def require_aggregate_read(principal: Principal, unit_id: str, tree: UnitTree) -> None:
    """Aggregates: viewers may read them (within their unit when they have one)."""
    if principal.role is Role.viewer and principal.unit_id is None:
        return
    if not can_access_unit(principal, unit_id, tree):
        raise forbidden(f"Bạn không có quyền xem số liệu của đơn vị {unit_id}.")


def require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise forbidden("Chỉ quản trị viên (admin) được thực hiện thao tác này.")

"""Access changes that every service must know to refuse a credential (SPEC §9.3).

Intake owns users and API keys and announces each change as `user.upserted` v1 and
`api_key.upserted` v1; every service keeps its own copy (`lhpn_shared.accounts`) and refuses a
disabled user's token or a revoked key as soon as the event arrives. No password, no key: a key
travels only as the SHA-256 of its value (a random 32-byte secret, so the hash cannot be
reversed by guessing).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from ..principal import Role

EVENT_KEY = r"^[a-z_]+(\.[a-z_]+)+\.v[0-9]+$"
ROUTE_NAME = r"^[a-z_]+(\.[a-z_-]+)+$"


class UserAccess(BaseModel):
    """A user as the services need it to accept or refuse a token."""

    username: str = Field(min_length=1, max_length=64)
    role: Role
    unit_id: str | None = None
    enabled: bool = True
    session_version: int = Field(
        default=0,
        ge=0,
        description="bumped on disable, role/unit change and password reset: a token that "
        "carries an older one is refused",
    )
    revision: int = Field(default=1, ge=1)
    updated_at: datetime


class ApiKeyAccess(BaseModel):
    """An API key of another system: its hash, its scope, whether it is revoked."""

    key_id: str = Field(min_length=1, max_length=64, description="visible id, shown in lists")
    name: str = Field(min_length=1, max_length=64, description="the system; actor `system:<name>`")
    key_hash: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the key, hex")
    unit_id: str = Field(min_length=1, max_length=32, description="root of its unit subtree")
    allowed_routes: list[str] | None = Field(
        default=None,
        description="permission names of the routes it may call; null: any route open to systems",
    )
    allowed_events: list[str] | None = Field(
        default=None,
        description="routing keys it may send (POST /api/v1/events, lhpn.inbound); "
        "null: every inbound type",
    )
    broker_user: str | None = Field(
        default=None, description="its RabbitMQ user, when it publishes on lhpn.inbound"
    )
    revoked: bool = False
    revision: int = Field(default=1, ge=1)
    updated_at: datetime

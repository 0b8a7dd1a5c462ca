"""API keys of other systems (SPEC §9.2–§9.3): created by an admin and shown once, stored and
announced only as a SHA-256 hash, bound to a unit subtree, to the routes and to the event types
the system may use, listed and revoked. `API_KEYS` in the environment is a bootstrap: its keys
are imported once (id `env-<name>`) and can then be revoked like the others.

A key may name the RabbitMQ user its system publishes with on `lhpn.inbound`; that user is then
bound to the key's unit subtree and event types.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from lhpn_shared.accounts import AccessRegistry, hash_api_key
from lhpn_shared.audit import AuditLog
from lhpn_shared.clock import Clock, to_millis
from lhpn_shared.contracts.access import ROUTE_NAME, ApiKeyAccess
from lhpn_shared.contracts.events import INBOUND_TYPES, make_event, routing_key
from lhpn_shared.contracts.units import UnitTree
from lhpn_shared.http import FieldProblem
from lhpn_shared.mongo import Doc
from lhpn_shared.outbox import outbox_fields, with_outbox
from lhpn_shared.principal import Principal

from .errors import Conflict, NotFound

INBOUND_KEYS = sorted(routing_key(t, v) for t, v in INBOUND_TYPES)
KEY_PREFIX = "lhpn_"


class NewApiKey(BaseModel):
    name: str = Field(min_length=2, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    unit_id: str = Field(min_length=1, max_length=32, description="root of its unit subtree")
    allowed_routes: list[str] | None = Field(
        default=None,
        max_length=100,
        description="permission names (x-permission.name in each service's OpenAPI) of the "
        "routes it may call; null: every route open to systems",
    )
    allowed_events: list[str] | None = Field(
        default=None,
        max_length=10,
        description=f"routing keys it may send, among {', '.join(INBOUND_KEYS)}; null: all",
    )
    broker_user: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="its RabbitMQ user, if it publishes on lhpn.inbound",
    )

    @field_validator("allowed_routes")
    @classmethod
    def _route_names(cls, value: list[str] | None) -> list[str] | None:
        for name in value or []:
            if not re.fullmatch(ROUTE_NAME, name):
                raise ValueError(f"'{name}' không phải tên quyền (ví dụ activities.record)")
        return sorted(set(value)) if value is not None else None

    @field_validator("allowed_events")
    @classmethod
    def _event_keys(cls, value: list[str] | None) -> list[str] | None:
        for key in value or []:
            if key not in INBOUND_KEYS:
                raise ValueError(f"'{key}' không phải loại sự kiện hệ thống khác được gửi")
        return sorted(set(value)) if value is not None else None


class ApiKeyOut(BaseModel):
    key_id: str
    name: str
    prefix: str = Field(description="how the key starts: enough to recognise it, not to use it")
    unit_id: str
    allowed_routes: list[str] | None
    allowed_events: list[str] | None
    broker_user: str | None
    revoked: bool
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="the key itself: shown this once, never again")


def key_out(doc: Doc) -> ApiKeyOut:
    return ApiKeyOut(
        key_id=doc["_id"],
        name=doc["name"],
        prefix=doc["prefix"],
        unit_id=doc["unit_id"],
        allowed_routes=doc.get("allowed_routes"),
        allowed_events=doc.get("allowed_events"),
        broker_user=doc.get("broker_user"),
        revoked=doc.get("revoked", False),
        created_at=doc["created_at"],
        created_by=doc["created_by"],
        revoked_at=doc.get("revoked_at"),
    )


def key_access(doc: Doc) -> ApiKeyAccess:
    return ApiKeyAccess(
        key_id=doc["_id"],
        name=doc["name"],
        key_hash=doc["key_hash"],
        unit_id=doc["unit_id"],
        allowed_routes=doc.get("allowed_routes"),
        allowed_events=doc.get("allowed_events"),
        broker_user=doc.get("broker_user"),
        revoked=doc.get("revoked", False),
        revision=doc.get("revision", 1),
        updated_at=doc.get("updated_at") or doc["created_at"],
    )


class ApiKeys:
    def __init__(
        self,
        coll: AsyncCollection[Doc],
        clock: Clock,
        registry: AccessRegistry,
        audit: AuditLog,
        wake_relay: Any = lambda: None,
    ) -> None:
        self._coll = coll
        self._clock = clock
        self._registry = registry
        self._audit = audit
        self._wake = wake_relay

    def now(self) -> datetime:
        return to_millis(self._clock.now())

    async def load(self) -> list[ApiKeyAccess]:
        return [key_access(d) async for d in self._coll.find({}, {"outbox": 0})]

    async def import_bootstrap(self, keys: dict[str, tuple[str, str]]) -> None:
        """The `API_KEYS` setting's keys, once each (a revoked one stays revoked)."""
        for key, (name, unit_id) in keys.items():
            with contextlib.suppress(DuplicateKeyError):
                await self._insert(
                    f"env-{name}",
                    key,
                    NewApiKey.model_construct(
                        name=name,
                        unit_id=unit_id,
                        allowed_routes=None,
                        allowed_events=None,
                        broker_user=None,
                    ),
                    created_by="API_KEYS",
                )

    async def create(self, new: NewApiKey, tree: UnitTree, by: Principal) -> ApiKeyCreated:
        if new.unit_id not in tree:
            raise FieldProblem([(("unit_id",), f"Không có đơn vị mã '{new.unit_id}'.")])
        if new.broker_user is not None and await self._coll.find_one(
            {"broker_user": new.broker_user, "revoked": False}, {"_id": 1}
        ):
            raise Conflict(f"Người dùng RabbitMQ '{new.broker_user}' đã gắn với một khóa khác.")
        key_id = secrets.token_hex(4)
        key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        try:
            doc = await self._insert(
                key_id,
                key,
                new,
                created_by=by.subject,
                audit=[self._entry(by, "api_keys.create", key_id, new.unit_id)],
            )
        except DuplicateKeyError:
            raise Conflict(f"Đã có khóa API tên '{new.name}'.") from None
        return ApiKeyCreated(**key_out(doc).model_dump(), key=key)

    async def list(self) -> list[ApiKeyOut]:
        docs = await self._coll.find({}, {"outbox": 0}).sort("_id", 1).to_list(None)
        return [key_out(d) for d in docs]

    async def get(self, key_id: str) -> ApiKeyOut:
        return key_out(await self._load(key_id))

    async def revoke(self, key_id: str, by: Principal) -> ApiKeyOut:
        doc = await self._load(key_id)
        if doc.get("revoked", False):
            return key_out(doc)
        now = self.now()
        new_state = {
            "revoked": True,
            "revoked_at": now,
            "updated_at": now,
            "revision": doc.get("revision", 1) + 1,
        }
        changed = {**doc, **new_state}
        access = key_access(changed)
        result = await self._coll.update_one(
            {"_id": key_id, "revision": doc.get("revision", 1)},
            with_outbox(
                {"$set": new_state},
                [self._event(access)],
                [self._entry(by, "api_keys.revoke", key_id, doc["unit_id"])],
            ),
        )
        if result.matched_count == 0:
            raise Conflict("Khóa API vừa được người khác thay đổi, vui lòng thử lại.")
        self._announced(access)
        return key_out(changed)

    async def _load(self, key_id: str) -> Doc:
        doc = await self._coll.find_one({"_id": key_id}, {"outbox": 0})
        if doc is None:
            raise NotFound(f"Không có khóa API '{key_id}'.")
        return doc

    async def _insert(
        self,
        key_id: str,
        key: str,
        new: NewApiKey,
        *,
        created_by: str,
        audit: Sequence[Doc] = (),
    ) -> Doc:
        now = self.now()
        doc: Doc = {
            "_id": key_id,
            "name": new.name,
            "prefix": key[: len(KEY_PREFIX) + len(key_id)] if key.startswith(KEY_PREFIX) else "",
            "key_hash": hash_api_key(key),
            "unit_id": new.unit_id,
            "allowed_routes": new.allowed_routes,
            "allowed_events": new.allowed_events,
            "broker_user": new.broker_user,
            "revoked": False,
            "revision": 1,
            "created_at": now,
            "created_by": created_by,
            "updated_at": now,
        }
        access = key_access(doc)
        await self._coll.insert_one({**doc, **outbox_fields([self._event(access)], audit)})
        self._announced(access)
        return doc

    def _entry(self, by: Principal, action: str, key_id: str, unit_id: str) -> Doc:
        """The audit record of a change, stored inside its write (the relay moves it)."""
        return self._audit.entry(
            by, action, entity_type="api_key", entity_id=key_id, unit_id=unit_id
        )

    def _announced(self, access: ApiKeyAccess) -> None:
        self._registry.apply_key(access)
        self._wake()

    def _event(self, access: ApiKeyAccess) -> Any:
        return make_event(
            "api_key.upserted",
            access,
            source="intake",
            occurred_at=self.now(),
            unit_id=access.unit_id,
        )

"""Staff accounts (SPEC §9.2–§9.3): created and changed by admins through the API, announced to
every service as `user.upserted` so a disabled account, a changed role or unit or a reset
password is refused everywhere — here from the very next request, elsewhere as soon as the
event arrives.

Each change that must end the user's open sessions bumps `session_version`; tokens carry it
(`sv`). Passwords are argon2 hashes computed off the event loop (`Passwords`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel, Field, model_validator
from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from lhpn_shared.accounts import AccessRegistry
from lhpn_shared.audit import AuditLog
from lhpn_shared.clock import Clock, SystemClock, to_millis
from lhpn_shared.contracts.access import UserAccess
from lhpn_shared.contracts.events import make_event
from lhpn_shared.contracts.units import UnitTree
from lhpn_shared.http import FieldProblem
from lhpn_shared.mongo import Doc
from lhpn_shared.outbox import outbox_fields, with_outbox
from lhpn_shared.principal import STAFF_ROLES, Principal, Role
from lhpn_shared.settings import DEV_ADMIN_PASSWORD, ProductionRefused

from .errors import Conflict, NotFound

USERNAME = r"^[A-Za-z0-9_.@-]+$"


class NewUser(BaseModel):
    username: str = Field(min_length=3, max_length=64, pattern=USERNAME)
    password: str = Field(min_length=8, max_length=200)
    role: Role
    unit_id: str | None = Field(default=None, max_length=32)


class RoleChange(BaseModel):
    role: Role
    unit_id: str | None = Field(default=None, max_length=32)


class PasswordReset(BaseModel):
    password: str = Field(min_length=8, max_length=200)


class PasswordChange(BaseModel):
    current_password: str = Field(min_length=1, max_length=200)
    new_password: str = Field(min_length=8, max_length=200)

    @model_validator(mode="after")
    def _differs(self) -> PasswordChange:
        if self.current_password == self.new_password:
            raise ValueError("Mật khẩu mới phải khác mật khẩu hiện tại.")
        return self


class UserOut(BaseModel):
    username: str
    role: Role
    unit_id: str | None
    enabled: bool = True
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Passwords:
    """argon2 hashing in worker threads (argon2-cffi releases the GIL), at most `concurrency`
    at once: each hash holds 64 MiB and a core, so a burst of sign-ins queues instead of
    exhausting memory and CPU, and the event loop keeps serving other requests meanwhile."""

    def __init__(self, concurrency: int = 1) -> None:
        self._hasher = PasswordHasher()
        self._slots = asyncio.Semaphore(concurrency)
        self._dummy: str | None = None

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True when `password` matches; with no hash (no such user) the same work is done
        against a dummy hash, so timing does not tell which usernames exist."""
        if password_hash is None:
            if self._dummy is None:
                self._dummy = await self.hash("not-a-password-of-anyone")
            password_hash = self._dummy
            password = password + "\x00"
        async with self._slots:
            try:
                return await asyncio.to_thread(self._hasher.verify, password_hash, password)
            except (VerificationError, InvalidHashError):
                return False


def user_access(doc: Doc) -> UserAccess:
    return UserAccess(
        username=doc["_id"],
        role=Role(doc["role"]),
        unit_id=doc.get("unit_id"),
        enabled=doc.get("enabled", True),
        session_version=doc.get("session_version", 0),
        revision=doc.get("revision", 1),
        updated_at=doc.get("updated_at") or doc["created_at"],
    )


def user_out(doc: Doc) -> UserOut:
    return UserOut(
        username=doc["_id"],
        role=Role(doc["role"]),
        unit_id=doc.get("unit_id"),
        enabled=doc.get("enabled", True),
        created_at=doc.get("created_at"),
        updated_at=doc.get("updated_at"),
    )


class Users:
    def __init__(
        self,
        coll: AsyncCollection[Doc],
        clock: Clock | None = None,
        registry: AccessRegistry | None = None,
        audit: AuditLog | None = None,
        passwords: Passwords | None = None,
        wake_relay: Any = lambda: None,
    ) -> None:
        """`coll` alone serves the operator commands (`python -m intake set-admin-password`)."""
        self._coll = coll
        self._clock = clock or SystemClock()
        self._registry = registry or AccessRegistry()
        self._audit = audit
        self.passwords = passwords or Passwords()
        self._wake = wake_relay

    def now(self) -> datetime:
        return to_millis(self._clock.now())

    async def ensure_indexes(self) -> None:
        await self._coll.create_index([("unit_id", ASCENDING)])

    async def load(self) -> list[UserAccess]:
        return [user_access(d) async for d in self._coll.find({}, {"outbox": 0})]

    async def ensure_admin(self, username: str, password: str) -> None:
        """Create the first admin from settings if it does not exist (never overwrite)."""
        with contextlib.suppress(DuplicateKeyError):
            await self._insert(username, await self.passwords.hash(password), Role.admin, None)

    # ---- sign-in --------------------------------------------------------------------------------

    async def authenticate(self, username: str, password: str) -> UserAccess | None:
        """The user when the password is right and the account enabled; None otherwise."""
        doc = await self._coll.find_one({"_id": username}, {"outbox": 0})
        ok = await self.passwords.verify(doc["password_hash"] if doc else None, password)
        if doc is None or not ok or not doc.get("enabled", True):
            return None
        return user_access(doc)

    # ---- the production guard and the operator's command ----------------------------------------

    async def refuse_development_admin_password(self) -> None:
        """Raise `ProductionRefused` when a stored admin still has the development password
        (e.g. a database first started in development, where the first admin got it)."""
        async for doc in self._coll.find({"role": Role.admin.value}, {"password_hash": 1}):
            if await self.passwords.verify(doc["password_hash"], DEV_ADMIN_PASSWORD):
                raise ProductionRefused(
                    f"refused in ENV=production: the stored administrator '{doc['_id']}' still "
                    "has the development password; set its own with "
                    "`ADMIN_USERNAME=<name> ADMIN_PASSWORD=<new> python -m intake "
                    "set-admin-password` (ADMIN_PASSWORD only creates the first admin)"
                )

    async def set_password(self, username: str, password: str, now: datetime) -> bool:
        """Replace a user's password (the operator's command); its sessions end. False when
        there is no such user."""
        doc = await self._coll.find_one({"_id": username}, {"outbox": 0})
        if doc is None:
            return False
        fields = {"password_hash": await self.passwords.hash(password), "password_set_at": now}
        await self._change(doc, fields, end_sessions=True)
        return True

    # ---- administration -------------------------------------------------------------------------

    async def list(
        self, *, unit_ids: list[str] | None, role: Role | None, limit: int, cursor: str | None
    ) -> tuple[list[UserOut], str | None]:
        query: dict[str, Any] = {}
        if unit_ids is not None:
            query["unit_id"] = {"$in": unit_ids}
        if role is not None:
            query["role"] = role.value
        if cursor:
            query["_id"] = {"$gt": cursor}
        docs = await self._coll.find(query, {"outbox": 0}).sort("_id", 1).to_list(limit + 1)
        items = [user_out(d) for d in docs[:limit]]
        return items, (items[-1].username if len(docs) > limit else None)

    async def get(self, username: str) -> UserOut:
        return user_out(await self._load(username))

    async def create(self, new: NewUser, tree: UnitTree, by: Principal) -> UserOut:
        check_role_unit(new.role, new.unit_id, tree)
        try:
            doc = await self._insert(
                new.username,
                await self.passwords.hash(new.password),
                new.role,
                new.unit_id,
                audit=self._entry(by, "users.create", new.username, new.unit_id),
            )
        except DuplicateKeyError:
            raise Conflict(f"Tên đăng nhập '{new.username}' đã tồn tại.") from None
        return user_out(doc)

    async def set_enabled(self, username: str, enabled: bool, by: Principal) -> UserOut:
        doc = await self._load(username)
        if doc.get("enabled", True) == enabled:
            return user_out(doc)
        if not enabled:
            await self._keep_an_admin(doc)
        action = "users.enable" if enabled else "users.disable"
        changed = await self._change(
            doc, {"enabled": enabled}, end_sessions=not enabled, by=by, action=action
        )
        return user_out(changed)

    async def change_role(
        self, username: str, change: RoleChange, tree: UnitTree, by: Principal
    ) -> UserOut:
        check_role_unit(change.role, change.unit_id, tree)
        doc = await self._load(username)
        if (doc["role"], doc.get("unit_id")) == (change.role.value, change.unit_id):
            return user_out(doc)
        if change.role is not Role.admin:
            await self._keep_an_admin(doc)
        changed = await self._change(
            doc,
            {"role": change.role.value, "unit_id": change.unit_id},
            end_sessions=True,
            by=by,
            action="users.change_role",
        )
        return user_out(changed)

    async def reset_password(self, username: str, password: str, by: Principal) -> UserOut:
        doc = await self._load(username)
        changed = await self._change(
            doc,
            {"password_hash": await self.passwords.hash(password)},
            end_sessions=True,
            by=by,
            action="users.reset_password",
        )
        return user_out(changed)

    async def change_own_password(self, me: Principal, change: PasswordChange) -> UserAccess:
        """A user's own password; their other sessions end (they get a new token)."""
        doc = await self._load(me.subject)
        if not await self.passwords.verify(doc["password_hash"], change.current_password):
            raise FieldProblem([(("current_password",), "Mật khẩu hiện tại không đúng.")])
        changed = await self._change(
            doc,
            {"password_hash": await self.passwords.hash(change.new_password)},
            end_sessions=True,
            by=me,
            action="me.password",
        )
        return user_access(changed)

    # ---- helpers --------------------------------------------------------------------------------

    async def _load(self, username: str) -> Doc:
        doc = await self._coll.find_one({"_id": username}, {"outbox": 0})
        if doc is None:
            raise NotFound(f"Không có tài khoản '{username}'.")
        return doc

    async def _insert(
        self,
        username: str,
        password_hash: str,
        role: Role,
        unit_id: str | None,
        *,
        audit: Sequence[Doc] = (),
    ) -> Doc:
        now = self.now()
        doc: Doc = {
            "_id": username,
            "password_hash": password_hash,
            "role": role.value,
            "unit_id": unit_id,
            "enabled": True,
            "session_version": 0,
            "revision": 1,
            "created_at": now,
            "updated_at": now,
        }
        access = user_access(doc)
        await self._coll.insert_one({**doc, **outbox_fields([self._event(access)], audit)})
        self._announced(access)
        return doc

    async def _change(
        self,
        doc: Doc,
        fields: Doc,
        *,
        end_sessions: bool,
        by: Principal | None = None,
        action: str = "",
    ) -> Doc:
        """One write: the new state, the next revision, its `user.upserted` event and, when
        `by` made it, the audit record of `action` (moved to the audit log by the relay)."""
        new_state = {
            **fields,
            "revision": doc.get("revision", 1) + 1,
            "session_version": doc.get("session_version", 0) + (1 if end_sessions else 0),
            "updated_at": self.now(),
        }
        changed = {**doc, **new_state}
        access = user_access(changed)
        result = await self._coll.update_one(
            {"_id": doc["_id"], "revision": doc.get("revision", {"$exists": False})},
            with_outbox(
                {"$set": new_state},
                [self._event(access)],
                () if by is None else self._entry(by, action, doc["_id"], changed.get("unit_id")),
            ),
        )
        if result.matched_count == 0:
            raise Conflict("Tài khoản vừa được người khác thay đổi, vui lòng thử lại.")
        self._announced(access)
        return changed

    def _announced(self, access: UserAccess) -> None:
        """This process refuses the old sessions at once; other services when the event comes."""
        self._registry.apply_user(access)
        self._wake()

    def _event(self, access: UserAccess) -> Any:
        return make_event(
            "user.upserted",
            access,
            source="intake",
            occurred_at=self.now(),
            unit_id=access.unit_id,
        )

    async def _keep_an_admin(self, doc: Doc) -> None:
        """Refuse to disable or demote the last enabled admin: nobody could manage users."""
        if doc["role"] != Role.admin.value or not doc.get("enabled", True):
            return
        others = await self._coll.count_documents(
            {"role": Role.admin.value, "enabled": {"$ne": False}, "_id": {"$ne": doc["_id"]}}
        )
        if others == 0:
            raise Conflict("Không thể khóa hoặc đổi vai trò quản trị viên cuối cùng.")

    def _entry(
        self, by: Principal, action: str, username: str, unit_id: str | None
    ) -> Sequence[Doc]:
        """The audit record of a change to store inside its write (none without a log)."""
        if self._audit is None:
            return []
        return [
            self._audit.entry(by, action, entity_type="user", entity_id=username, unit_id=unit_id)
        ]


def check_role_unit(role: Role, unit_id: str | None, tree: UnitTree) -> None:
    """Staff belong to a unit; admins to none; a viewer may be limited to a unit."""
    if role is Role.system:
        raise FieldProblem([(("role",), "Hệ thống khác dùng khóa API, không dùng tài khoản.")])
    if role is Role.admin and unit_id is not None:
        raise FieldProblem([(("unit_id",), "Quản trị viên không gắn với đơn vị.")])
    if role in STAFF_ROLES and unit_id is None:
        raise FieldProblem([(("unit_id",), "Cán bộ phải gắn với một đơn vị.")])
    if unit_id is not None and unit_id not in tree:
        raise FieldProblem([(("unit_id",), f"Không có đơn vị mã '{unit_id}'.")])

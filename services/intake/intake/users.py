"""Staff accounts: argon2 password hashes, the first admin from settings, token issuing."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel, Field
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from lhpn_shared.auth import Principal, Role
from lhpn_shared.mongo import Doc
from lhpn_shared.settings import DEV_ADMIN_PASSWORD, ProductionRefused


class NewUser(BaseModel):
    username: str = Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    password: str = Field(min_length=8, max_length=200)
    role: Role
    unit_id: str | None = None


class UserOut(BaseModel):
    username: str
    role: Role
    unit_id: str | None


class Users:
    def __init__(self, coll: AsyncCollection[Doc]) -> None:
        self._coll = coll
        self._hasher = PasswordHasher()

    async def ensure_admin(self, username: str, password: str, now: datetime) -> None:
        """Create the first admin from settings if it does not exist (never overwrite)."""
        with contextlib.suppress(DuplicateKeyError):
            await self._coll.insert_one(
                {
                    "_id": username,
                    "password_hash": self._hasher.hash(password),
                    "role": Role.admin.value,
                    "unit_id": None,
                    "created_at": now,
                }
            )

    async def create(self, user: NewUser, now: datetime) -> bool:
        try:
            await self._coll.insert_one(
                {
                    "_id": user.username,
                    "password_hash": self._hasher.hash(user.password),
                    "role": user.role.value,
                    "unit_id": user.unit_id,
                    "created_at": now,
                }
            )
        except DuplicateKeyError:
            return False
        return True

    async def authenticate(self, username: str, password: str) -> Principal | None:
        doc = await self._coll.find_one({"_id": username})
        if doc is None:
            self._hasher.hash(password)  # same work either way: no user enumeration by timing
            return None
        try:
            self._hasher.verify(doc["password_hash"], password)
        except (VerificationError, InvalidHashError):
            return None
        return Principal(subject=username, role=Role(doc["role"]), unit_id=doc.get("unit_id"))

    async def refuse_development_admin_password(self) -> None:
        """Raise `ProductionRefused` when a stored admin still has the development password
        (e.g. a database first started in development, where the first admin got it)."""
        async for doc in self._coll.find({"role": Role.admin.value}, {"password_hash": 1}):
            if await asyncio.to_thread(self._matches, doc["password_hash"], DEV_ADMIN_PASSWORD):
                raise ProductionRefused(
                    f"refused in ENV=production: the stored administrator '{doc['_id']}' still "
                    "has the development password; set its own with "
                    "`ADMIN_USERNAME=<name> ADMIN_PASSWORD=<new> python -m intake "
                    "set-admin-password` (ADMIN_PASSWORD only creates the first admin)"
                )

    async def set_password(self, username: str, password: str, now: datetime) -> bool:
        """Replace a user's password; False when there is no such user."""
        password_hash = await asyncio.to_thread(self._hasher.hash, password)
        result = await self._coll.update_one(
            {"_id": username}, {"$set": {"password_hash": password_hash, "password_set_at": now}}
        )
        return result.matched_count == 1

    def _matches(self, password_hash: str, password: str) -> bool:
        try:
            return bool(self._hasher.verify(password_hash, password))
        except (VerificationError, InvalidHashError):
            return False

"""Sign-in throttling: after repeated failures for one username, or from one client address,
`POST /api/v1/auth/token` answers 429 with `Retry-After` without checking the password.

Counted in the database (collection `sign_in_failures`), so every intake replica sees the same
counts: one document per username and per address, holding the attempts since the first one of
the current window. Each attempt is counted BEFORE its password is checked (an atomic `$inc`),
so a burst of concurrent guesses cannot all slip in before the first failure is written; a
right password then takes its attempt back. A username is locked after `per_user` failed
attempts and an address after `per_address` (higher: an office behind one address has many
users), until the window that began with the first failure ends. Locking one username never
stops another user.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from lhpn_shared.mongo import Doc


class Throttled(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Đăng nhập sai quá nhiều lần, vui lòng thử lại sau {retry_after} giây.")
        self.retry_after = retry_after


class SignInThrottle:
    def __init__(
        self,
        coll: AsyncCollection[Doc],
        *,
        per_user: int,
        per_address: int,
        window: timedelta,
    ) -> None:
        self._coll = coll
        self._limits = {"user": per_user, "addr": per_address}
        self._window = window

    @staticmethod
    def _keys(username: str, address: str | None) -> dict[str, str]:
        keys = {"user": f"user:{username.lower()}"}
        if address:
            keys["addr"] = f"addr:{address}"
        return keys

    async def attempt(self, username: str, address: str | None, now: datetime) -> None:
        """Count this attempt; raise `Throttled` when the username or the address is over its
        limit (the password is then not checked at all)."""
        waits = []
        for kind, key in self._keys(username, address).items():
            doc = await self._count(key, now)
            if doc["count"] > self._limits[kind]:
                ends = doc["since"] + self._window
                waits.append(max(1, math.ceil((ends - now).total_seconds())))
        if waits:
            raise Throttled(max(waits))

    async def _count(self, key: str, now: datetime) -> Doc:
        """One more attempt on `key`, atomically (upsert with `$inc`), opening a new window
        when the last one has ended (only one of concurrent attempts resets it)."""
        bump: Doc = {"$inc": {"count": 1}}
        try:
            doc = await self._coll.find_one_and_update(
                {"_id": key},
                {**bump, "$setOnInsert": {"since": now}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:  # a concurrent first attempt created it just now
            doc = await self._coll.find_one_and_update(
                {"_id": key}, bump, return_document=ReturnDocument.AFTER
            )
        assert doc is not None
        if doc["since"] + self._window <= now:
            reset = await self._coll.find_one_and_update(
                {"_id": key, "since": doc["since"]},
                {"$set": {"count": 1, "since": now}},
                return_document=ReturnDocument.AFTER,
            )
            doc = reset or await self._coll.find_one({"_id": key}) or doc
        return doc

    async def succeeded(self, username: str, address: str | None) -> None:
        """A right password: the username starts afresh, the address gets its attempt back."""
        keys = self._keys(username, address)
        await self._coll.delete_one({"_id": keys["user"]})
        if "addr" in keys:
            await self._coll.update_one({"_id": keys["addr"]}, {"$inc": {"count": -1}})

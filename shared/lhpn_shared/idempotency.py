"""Idempotent, order-tolerant consumers (STYLE principle 7).

Two tools, both single-document atomic writes:
- `upsert_if_newer`: store an entity's state only when the incoming revision is higher than the
  stored one (a replay or a late, older event changes nothing);
- `Inbox`: remember which `event_id`s a consumer has applied, for effects that are not
  naturally idempotent. Apply the effect first, then `mark` (a crash in between re-applies an
  idempotent effect; never mark first and lose the effect).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from .mongo import Doc


async def ensure_revision_index(coll: AsyncCollection[Doc]) -> None:
    """An index over (`_id`, `revision`), the filter of `upsert_if_newer`. MongoDB finds the
    one document by the `_id` index whether or not it exists; the development server ignores it
    (a non-unique index) and its launcher starts such a filter from the `_id` index
    (deploy/devmongo/DevMongo.java)."""
    await coll.create_index([("_id", 1), ("revision", 1)], name="revision_guard")


async def upsert_if_newer(coll: AsyncCollection[Doc], key: Any, revision: int, fields: Doc) -> bool:
    """Set `fields` (and `revision`) on document `key` if its stored revision is lower.

    Returns True when the write happened. Create `ensure_revision_index` on the collection.
    Relies on the unique `_id`: when a document with an
    equal or higher revision exists, the upsert's insert collides and nothing changes.
    """
    try:
        await coll.update_one(
            {"_id": key, "revision": {"$lt": revision}},
            {"$set": {**fields, "revision": revision}},
            upsert=True,
        )
    except DuplicateKeyError:
        return False
    return True


class Inbox:
    """The set of event ids one consumer has applied."""

    def __init__(self, coll: AsyncCollection[Doc]) -> None:
        self._coll = coll

    async def seen(self, event_id: str) -> bool:
        return await self._coll.find_one({"_id": event_id}, {"_id": 1}) is not None

    async def mark(self, event_id: str, at: datetime) -> bool:
        """Record the event; False if it was already recorded."""
        try:
            await self._coll.insert_one({"_id": event_id, "at": at})
        except DuplicateKeyError:
            return False
        return True

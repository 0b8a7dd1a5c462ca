"""The audit log every service keeps (SPEC §9.3): who did what, when, from where.

One append-only collection per service (`audit`): a record for every write a principal makes
(HTTP or `lhpn.inbound`) and every read of case personal data, and for refused attempts at
those. Records are only ever inserted. Their `_id` starts with the instant in milliseconds, so
the newest-first listing and the time filters walk the `_id` index.

`GET /api/v1/audit` (admins): paged newest first (`limit`, `cursor`), filters `actor`,
`unit_id` (the unit's subtree), `from`, `to`.

The record of a write to a document travels inside that write (issue 13): the use case builds
it with `entry(...)` and hands it to `with_outbox(update, events, audit=[record])` /
`outbox_fields(events, audit=[record])`, so the change and its record are one commit, and
the outbox relay moves it here (`OutboxRelay(..., audit=coll)`), a moment later: the listing
shows it once moved. Its `_id` is still the instant of the write. Users, API keys, unit
changes (in their change record), a unit's contacts and the reminder policy are written this
way too. Reads of personal data, refusals and writes that are not one document write (a
sweep) keep `record(...)`, a direct insert: records recorded at the same time share one
`insert_many`, and a request returns only once its own record is stored, or fails with the
error that kept it from being stored.
"""

import asyncio
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from .access import ADMINS, READ, Guard, Permission, TreeSource
from .clock import Clock, to_millis
from .http import QueryInstant
from .mongo import Doc
from .principal import Principal

AUDIT_READ = Permission("audit.read", READ, ADMINS)
CURSOR = r"^[0-9]{13}-[0-9a-f]+$"
DUPLICATE_KEY = 11000


class AuditEntry(BaseModel):
    audit_id: str
    at: datetime
    actor: str = Field(
        description="the principal's subject: username, system:<name>, broker:<user>"
    )
    role: str
    actor_unit_id: str | None = None
    action: str = Field(
        description="what was done (a permission name), e.g. activities.correct, cases.read"
    )
    entity_type: str | None = None
    entity_id: str | None = None
    unit_id: str | None = Field(default=None, description="the unit the entity belongs to")
    address: str | None = Field(
        default=None, description="client address, or amqp:<queue> for messages"
    )
    outcome: str = Field(default="ok", description="ok | refused")
    personal_data: bool = Field(default=False, description="case personal data was shown")


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_cursor: str | None = None


def _millis(at: datetime) -> int:
    return int(at.timestamp() * 1000)


class AuditLog:
    def __init__(self, coll: AsyncCollection[Doc], clock: Clock) -> None:
        self._coll = coll
        self._clock = clock
        # group commit: records waiting to be written, the outcome of those written
        self._waiting: list[Doc] = []
        self._outcome: dict[str, BaseException | None] = {}
        self._writing = asyncio.Lock()

    async def ensure_indexes(self) -> None:
        await self._coll.create_index([("actor", ASCENDING), ("_id", DESCENDING)])
        await self._coll.create_index([("unit_id", ASCENDING), ("_id", DESCENDING)])

    def entry(
        self,
        principal: Principal,
        action: str,
        *,
        entity_type: str | None = None,
        entity_id: Any = None,
        unit_id: str | None = None,
        outcome: str = "ok",
        personal_data: bool = False,
        address: str | None = None,
    ) -> Doc:
        """The record, timed now, to store inside the write it describes (`with_outbox`)."""
        at = to_millis(self._clock.now().astimezone(UTC))
        return {
            "_id": f"{_millis(at):013d}-{secrets.token_hex(6)}",
            "at": at,
            "actor": principal.subject,
            "role": principal.role.value,
            "actor_unit_id": principal.unit_id,
            "action": action,
            "entity_type": entity_type,
            "entity_id": None if entity_id is None else str(entity_id),
            "unit_id": unit_id,
            "address": address or principal.address,
            "outcome": outcome,
            "personal_data": personal_data,
        }

    async def record(
        self,
        principal: Principal,
        action: str,
        *,
        entity_type: str | None = None,
        entity_id: Any = None,
        unit_id: str | None = None,
        outcome: str = "ok",
        personal_data: bool = False,
        address: str | None = None,
    ) -> None:
        """Store the record now (a read, a refusal, a write that is not one document's)."""
        await self._store(
            self.entry(
                principal,
                action,
                entity_type=entity_type,
                entity_id=entity_id,
                unit_id=unit_id,
                outcome=outcome,
                personal_data=personal_data,
                address=address,
            )
        )

    async def _store(self, doc: Doc) -> None:
        """Insert `doc` with whatever other records are waiting: whoever holds the lock writes
        them all; the others find their outcome when their turn comes."""
        key = doc["_id"]
        self._waiting.append(doc)
        async with self._writing:
            if key not in self._outcome:
                batch, self._waiting = self._waiting, []
                try:
                    await self._coll.insert_many(batch, ordered=False)
                except asyncio.CancelledError:
                    # this request was cancelled: the others' records wait for the next writer
                    self._waiting[:0] = [d for d in batch if d["_id"] != key]
                    raise
                except BulkWriteError as exc:
                    # a record already stored (its writer was cancelled after the server took
                    # it) is a duplicate of itself: stored; any other error is its own
                    errors = {
                        batch[e["index"]]["_id"]: e
                        for e in exc.details.get("writeErrors", [])
                        if e.get("code") != DUPLICATE_KEY
                    }
                    for d in batch:
                        self._outcome[d["_id"]] = exc if d["_id"] in errors else None
                except Exception as exc:
                    for d in batch:
                        self._outcome[d["_id"]] = exc
                else:
                    for d in batch:
                        self._outcome[d["_id"]] = None
        failed = self._outcome.pop(key)
        if failed is not None:
            raise failed

    async def entries(
        self,
        *,
        actor: str | None = None,
        unit_ids: list[str] | None = None,
        from_at: datetime | None = None,
        to_at: datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[AuditEntry], str | None]:
        query: dict[str, Any] = {}
        if actor is not None:
            query["actor"] = actor
        if unit_ids is not None:
            query["unit_id"] = {"$in": unit_ids}
        id_range: dict[str, str] = {}
        if from_at is not None:
            id_range["$gte"] = f"{_millis(from_at):013d}"
        if to_at is not None:
            id_range["$lt"] = f"{_millis(to_at) + 1:013d}"
        if cursor is not None:
            id_range["$lt"] = min(cursor, id_range.get("$lt", cursor))
        if id_range:
            query["_id"] = id_range
        docs = await self._coll.find(query).sort("_id", DESCENDING).to_list(limit + 1)
        items = [AuditEntry(audit_id=d.pop("_id"), **d) for d in docs[:limit]]
        return items, (items[-1].audit_id if len(docs) > limit else None)


def audit_router(
    guard: Guard, log: Callable[[], AuditLog], tree: TreeSource | None = None
) -> APIRouter:
    """`GET /api/v1/audit` for a service whose audit log `log()` returns."""
    router = APIRouter(prefix="/api/v1", tags=["audit"])

    @router.get("/audit", response_model=AuditPage)
    async def list_audit(
        caller: Annotated[Principal, guard(AUDIT_READ)],
        actor: Annotated[str | None, Query(max_length=200)] = None,
        unit_id: Annotated[
            str | None, Query(max_length=32, description="the unit and its subtree")
        ] = None,
        from_: Annotated[QueryInstant | None, Query(alias="from")] = None,
        to: QueryInstant | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: Annotated[
            str | None, Query(max_length=40, pattern=r"^[0-9]{13}-[0-9a-f]+$")
        ] = None,
    ) -> AuditPage:
        units: list[str] | None = None
        if unit_id is not None:
            units = [unit_id]
            if tree is not None:
                units = (await tree()).subtree(unit_id) or [unit_id]
        items, nxt = await log().entries(
            actor=actor, unit_ids=units, from_at=from_, to_at=to, limit=limit, cursor=cursor
        )
        return AuditPage(items=items, next_cursor=nxt)

    return router

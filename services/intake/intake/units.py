"""The unit tree's use cases: loads, admins' changes and whole reorganisations (SPEC §2).

A change touches several unit documents (a merge closes some and opens or extends another), and
neither MongoDB without a replica set nor the development server has transactions. So every
change is first ONE document in `unit_changes`, written in one insert: the new state of each unit
it touches, the `unit.upserted` events (its outbox) and a claim `<unit_id>@<revision>` per unit
under a unique index. That insert is the commit point: after it the change happens whole — the
relay publishes its events, and the unit documents are brought to the planned states (idempotent
upserts guarded by revision), also after a crash (`resume`, at start). Two changes planned on
the same revision of a unit claim the same `<unit_id>@<revision>`: the second insert fails and
is answered 409 (after finishing any change a crash left half-applied), never half-written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import uuid4

from pydantic import BaseModel, Field
from pymongo import UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from lhpn_shared.clock import Clock, to_millis
from lhpn_shared.contracts.events import make_event
from lhpn_shared.contracts.units import Unit, UnitTree
from lhpn_shared.http import FieldProblem
from lhpn_shared.idempotency import upsert_if_newer
from lhpn_shared.mongo import Doc
from lhpn_shared.outbox import outbox_fields

from .repository import IntakeStore, unit_from_doc, unit_to_doc
from .unit_rules import Reorganisation, load_problems, plan_reorganisation

log = logging.getLogger("intake.units")

SOURCE = "intake"
MAX_UNITS_PER_CHANGE = 2000
"""One change document holds its units and their events: well under MongoDB's 16 MiB."""
APPLY_BATCH = 200


class UnitConflict(Exception):
    """The change contradicts the tree as it is now (HTTP 409)."""


class UnitsNotReady(Exception):
    def __str__(self) -> str:
        return "Dịch vụ đang khởi động, vui lòng thử lại sau ít giây."


class ChangeRecord(BaseModel):
    """What a change did, as the API answers it."""

    change_id: str
    kind: str = Field(description="load | reorganisation")
    effective_on: str | None = None
    title: str = ""
    actor: str
    created_at: datetime
    applied: bool
    unit_ids: list[str] = Field(description="units created or changed")


ChangeAudit = Callable[[str, list[str]], list[Doc]]
"""The audit records of a change, from its id and the ids of its units: stored inside the
change record, so that the change and its record are one write."""


@dataclass(frozen=True)
class LoadOutcome:
    created: int
    replaced: int
    unchanged: int
    change_id: str | None


class UnitRegistry:
    """Intake's unit tree: stored in `units`, changed only through `unit_changes`."""

    def __init__(self, store: IntakeStore, clock: Clock, wake_relay: Callable[[], None]) -> None:
        self.store = store
        self.clock = clock
        self._wake = wake_relay
        self._units: dict[str, Unit] | None = None
        self._tree: UnitTree | None = None

    # ---- the tree -------------------------------------------------------------------------

    async def load(self) -> None:
        """Finish any change a crash left half-applied, then read the tree."""
        await self.resume()
        self._units = {d["_id"]: unit_from_doc(d) async for d in self.store.units.find({})}
        self._tree = None

    @property
    def tree(self) -> UnitTree:
        if self._units is None:
            raise UnitsNotReady
        if self._tree is None:
            self._tree = UnitTree(self._units.values())
        return self._tree

    def _remember(self, units: list[Unit]) -> None:
        if self._units is not None:
            for u in units:
                current = self._units.get(u.unit_id)
                if current is None or current.revision < u.revision:
                    self._units[u.unit_id] = u
            self._tree = None

    # ---- loads: units created when missing ------------------------------------------------

    async def load_units(
        self,
        units: list[Unit],
        actor: str,
        *,
        replace: bool = False,
        audit: ChangeAudit | None = None,
        _retry: bool = True,
    ) -> LoadOutcome:
        """Create the units that are missing; with `replace`, also give existing ones the
        given state (revision + 1) when it differs. Without it an existing unit is left as it
        is, so loading default data again never undoes a later rename or reorganisation.
        `audit`: the audit record of the load, written inside its change record."""
        if len(units) > MAX_UNITS_PER_CHANGE:
            raise FieldProblem([(("units",), f"Tối đa {MAX_UNITS_PER_CHANGE} đơn vị mỗi lần nạp.")])
        tree = self.tree
        problems = load_problems(tree, units)
        if problems:
            raise FieldProblem(problems)
        planned: list[Unit] = []
        created = replaced = 0
        for u in units:
            current = tree.get(u.unit_id)
            if current is None:
                planned.append(u.model_copy(update={"revision": 1}))
                created += 1
            elif replace and current.model_copy(update={"revision": 1}) != u.model_copy(
                update={"revision": 1}
            ):
                planned.append(u.model_copy(update={"revision": current.revision + 1}))
                replaced += 1
        if not planned:
            return LoadOutcome(0, 0, len(units), None)
        try:
            record = await self._commit(
                "load", planned, actor, change_id=None, effective_on=None, audit=audit
            )
        except _ClaimTaken:
            if _retry:
                await self.load()  # another writer got there first: take its state, go again
                return await self.load_units(
                    units, actor, replace=replace, audit=audit, _retry=False
                )
            raise UnitConflict(
                "Các đơn vị này vừa được thay đổi bởi một thao tác khác; vui lòng thử lại."
            ) from None
        return LoadOutcome(created, replaced, len(units) - len(planned), record.change_id)

    # ---- admins' changes and reorganisations ----------------------------------------------

    async def reorganise(
        self, change: Reorganisation, actor: str, audit: ChangeAudit | None = None
    ) -> tuple[ChangeRecord, bool]:
        """Apply a change; returns (record, applied now). The same `reorganisation_id` with the
        same content again returns the first record (applied once); with other content, 409.
        `audit`: the audit record of the change, written inside its change record (so a change
        applied again by its id is audited once, by the write that made it)."""
        if change.reorganisation_id is not None:
            existing = await self.store.unit_changes.find_one({"_id": change.reorganisation_id})
            if existing is not None:
                return await self._same_change(existing, change), False
        for attempt in (1, 2):
            planned = plan_reorganisation(self.tree, change)
            if planned.problems:
                raise FieldProblem(planned.problems)
            if planned.conflicts:
                raise UnitConflict(" ".join(planned.conflicts))
            if len(planned.units) > MAX_UNITS_PER_CHANGE:
                raise FieldProblem(
                    [(("create",), f"Tối đa {MAX_UNITS_PER_CHANGE} đơn vị mỗi lần thay đổi.")]
                )
            await self._refuse_records_after(change)
            try:
                record = await self._commit(
                    "reorganisation",
                    planned.units,
                    actor,
                    change_id=change.reorganisation_id,
                    effective_on=change.effective_on.isoformat(),
                    title=change.title,
                    request=change.content(),
                    audit=audit,
                )
            except _ClaimTaken:
                if change.reorganisation_id is not None:
                    existing = await self.store.unit_changes.find_one(
                        {"_id": change.reorganisation_id}
                    )
                    if existing is not None:
                        return await self._same_change(existing, change), False
                if attempt == 2:
                    raise UnitConflict(
                        "Các đơn vị này vừa được thay đổi bởi một thao tác khác; "
                        "vui lòng tải lại rồi thử lại."
                    ) from None
                await self.load()  # finish the other change, then plan again on its result
                continue
            return record, True
        raise AssertionError("unreachable")

    async def _same_change(self, doc: Doc, change: Reorganisation) -> ChangeRecord:
        if doc.get("request") != change.content():
            raise UnitConflict(
                f"Mã thay đổi '{change.reorganisation_id}' đã được dùng cho một thay đổi khác."
            )
        if not doc.get("applied"):
            await self._apply(doc)
        return _record(await self.store.unit_changes.find_one({"_id": doc["_id"]}) or doc)

    async def _refuse_records_after(self, change: Reorganisation) -> None:
        """A unit cannot end before what it recorded: activities dated on or after the day it
        would close keep it open (void or move them first)."""
        if not change.close:
            return
        day = change.effective_on.isoformat()
        found = await self.store.activities.find(
            {"unit_id": {"$in": change.close}, "occurred_on": {"$gte": day}, "voided": False},
            {"unit_id": 1, "occurred_on": 1},
        ).to_list(5)
        if found:
            shown = ", ".join(f"{d['unit_id']} ngày {d['occurred_on']}" for d in found)
            raise UnitConflict(
                f"Có hoạt động ghi nhận từ ngày {change.effective_on:%d/%m/%Y} trở đi của đơn vị "
                f"sắp giải thể ({shown}); hủy hoặc sửa các hoạt động đó trước."
            )

    async def get_change(self, change_id: str) -> ChangeRecord | None:
        doc = await self.store.unit_changes.find_one({"_id": change_id})
        return _record(doc) if doc is not None else None

    # ---- the commit point and what follows it ---------------------------------------------

    async def _commit(
        self,
        kind: str,
        units: list[Unit],
        actor: str,
        *,
        change_id: str | None,
        effective_on: str | None,
        title: str = "",
        request: dict[str, Any] | None = None,
        audit: ChangeAudit | None = None,
    ) -> ChangeRecord:
        """The commit point: one insert of the change record, with its events and its audit
        record in the record's outbox; the unit documents follow (`_apply`, `resume`)."""
        now = to_millis(self.clock.now())
        change_id = change_id or f"{kind}-{uuid4()}"
        unit_ids = [u.unit_id for u in units]
        events = [
            make_event("unit.upserted", u, source=SOURCE, occurred_at=now, unit_id=u.unit_id)
            for u in units
        ]
        doc: Doc = {
            "_id": change_id,
            "kind": kind,
            "effective_on": effective_on,
            "title": title,
            "actor": actor,
            "created_at": now,
            "request": request,
            "units": [unit_to_doc(u) for u in units],
            "claims": [f"{u.unit_id}@{u.revision}" for u in units],
            "applied": False,
            **outbox_fields(events, audit(change_id, unit_ids) if audit else []),
        }
        try:
            await self.store.unit_changes.insert_one(doc)
        except DuplicateKeyError:
            raise _ClaimTaken from None
        self._wake()
        await self._apply(doc)
        log.info(
            "units changed",
            extra={"change_id": doc["_id"], "kind": kind, "units": len(units), "actor": actor},
        )
        return _record({**doc, "applied": True})

    async def _apply(self, doc: Doc) -> None:
        """Bring every unit document to the change's state (a newer revision stays)."""
        units = [Unit.model_validate(u) for u in doc["units"]]
        for start in range(0, len(units), APPLY_BATCH):
            await self._write_states(units[start : start + APPLY_BATCH])
        await self.store.unit_changes.update_one({"_id": doc["_id"]}, {"$set": {"applied": True}})
        self._remember(units)

    async def _write_states(self, units: list[Unit]) -> None:
        """Each unit document takes its planned state unless it holds that revision or a newer
        one already: one read, then unordered bulk writes (a write per unit costs about 3 ms on
        the development server; a batch insert a tenth of that)."""
        ids = [u.unit_id for u in units]
        found = self.store.units.find({"_id": {"$in": ids}}, {"revision": 1})
        stored = {d["_id"]: d["revision"] async for d in found}
        new = [{"_id": u.unit_id, **unit_to_doc(u)} for u in units if u.unit_id not in stored]
        updates = [
            UpdateOne({"_id": u.unit_id, "revision": stored[u.unit_id]}, {"$set": unit_to_doc(u)})
            for u in units
            if u.unit_id in stored and stored[u.unit_id] < u.revision
        ]
        try:
            if new:  # insert_many commits once per batch on the development server
                await self.store.units.insert_many(new, ordered=False)
            if updates:
                await self.store.units.bulk_write(updates, ordered=False)
        except BulkWriteError as exc:
            # a concurrent writer got there first: upsert_if_newer decides, one by one
            if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                raise
            for u in units:
                await upsert_if_newer(self.store.units, u.unit_id, u.revision, unit_to_doc(u))

    async def resume(self) -> int:
        """Apply the changes a crash left between their insert and their last unit write."""
        found = self.store.unit_changes.find({"applied": False}).sort("created_at", 1)
        pending = await found.to_list(None)
        for doc in pending:
            await self._apply(doc)
        if pending:
            log.warning("unit changes resumed after a crash", extra={"changes": len(pending)})
        return len(pending)


class _ClaimTaken(Exception):
    """The insert of a change collided: same id, or a unit revision another change claimed."""


def _record(doc: Doc) -> ChangeRecord:
    return ChangeRecord(
        change_id=doc["_id"],
        kind=doc["kind"],
        effective_on=doc.get("effective_on"),
        title=doc.get("title") or "",
        actor=doc["actor"],
        created_at=doc["created_at"],
        applied=bool(doc.get("applied")),
        unit_ids=[u["unit_id"] for u in doc["units"]],
    )

"""Transactional outbox inside the changed document (STYLE principle 6).

A writer puts the state change and its events in ONE document write:

    await coll.update_one(
        {"_id": key, ...},
        with_outbox({"$set": {...state...}}, [event]),
    )

`with_outbox` appends the events to the document's `outbox` array, sets `outbox_pending`
and bumps `outbox_seq` (`outbox_fields` does the same for an insert). The relay finds
pending documents through the `outbox_pending` index, publishes every event with publisher
confirms, then clears what it published — in one write per batch when nobody touched the
documents meanwhile (same `outbox_seq`), with `$pull` otherwise.
A crash between publish and clear republishes: consumers dedupe on `event_id`.

The audit record of the write (`AuditLog.entry`, `lhpn_shared.audit`) travels the same way:
`with_outbox(update, events, audit=[record])` pushes it to the document's `audit` array in
the same write (one commit: a stored change always has its record), and the relay, in the
same pass as the events, moves the records to the audit collection with one `insert_many`
per batch before it clears them. A record already there (a crash between that insert and the
clear) is a duplicate `_id`: already moved. A write with a record and no event still sets
`outbox_pending`, so the relay's one index finds both.

Under load the relay must not cost the database more than the writes it follows: a writer
wakes it naming the collection it wrote (`wake("activities")`), the relay waits a moment
(`gather_seconds`) so that the events of concurrent requests are published and cleared
together, and it reads only the collections it was told about — every collection when woken
without a name, after an idle period, after a failure, or while a batch came back full.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from .contracts.events import Envelope
from .mongo import TRANSIENT_DB_ERRORS, Doc

log = logging.getLogger("lhpn.outbox")


def outbox_entry(envelope: Envelope) -> Doc:
    return {
        "event_id": str(envelope.event_id),
        "routing_key": envelope.routing_key,
        "body": envelope.model_dump_json(),
    }


def outbox_fields(events: Sequence[Envelope], audit: Sequence[Doc] = ()) -> Doc:
    """Fields for a document inserted together with its events and the audit records of
    the write (`AuditLog.entry`)."""
    fields: Doc = {
        "outbox": [outbox_entry(e) for e in events],
        "outbox_pending": bool(events) or bool(audit),
        "outbox_seq": 1,
    }
    if audit:
        fields[AUDIT_FIELD] = list(audit)
    return fields


def with_outbox(
    update: dict[str, Any], events: Sequence[Envelope], audit: Sequence[Doc] = ()
) -> dict[str, Any]:
    """Add the operators that append `events` to a document's outbox, and `audit` (the
    write's audit records, `AuditLog.entry`) to its pending records, to `update`."""
    update.setdefault("$set", {})["outbox_pending"] = True
    push = update.setdefault("$push", {})
    push["outbox"] = {"$each": [outbox_entry(e) for e in events]}
    if audit:
        push[AUDIT_FIELD] = {"$each": list(audit)}
    update.setdefault("$inc", {})["outbox_seq"] = 1
    return update


PENDING: Doc = {"outbox_pending": True}
AUDIT_FIELD = "audit"
"""The document's audit records not yet moved to the audit collection."""
OUTBOX_FIELDS = frozenset({"outbox", "outbox_pending", "outbox_seq", AUDIT_FIELD})
"""The fields this module keeps in a document: not part of its state."""
DUPLICATE_KEY = 11000


async def ensure_outbox_index(coll: AsyncCollection[Doc]) -> None:
    """The relay's find uses `outbox_pending`; its clear filters on (`_id`, `outbox_seq`),
    which mongo-java-server serves from an index only when one covers both fields."""
    await coll.create_index([("outbox_pending", ASCENDING)])
    await coll.create_index([("_id", ASCENDING), ("outbox_seq", ASCENDING)], unique=True)


Publish = Callable[[str, str, bytes], Awaitable[None]]
"""publish(routing_key, event_id, body) — returns once the broker confirmed."""


class OutboxRelay:
    """Publishes pending outbox events of some collections, and moves their documents'
    pending audit records to `audit` (the service's audit collection); one instance per
    service process."""

    def __init__(
        self,
        collections: Sequence[AsyncCollection[Doc]],
        publish: Publish,
        *,
        audit: AsyncCollection[Doc] | None = None,
        batch: int = 500,
        idle_seconds: float = 1.0,
        publish_timeout: float = 10.0,
        gather_seconds: float = 0.02,
    ) -> None:
        self._collections = list(collections)
        self._publish = publish
        self._audit = audit
        self._batch = batch
        self._idle = idle_seconds
        self._publish_timeout = publish_timeout
        self._gather = gather_seconds
        self._wakeup = asyncio.Event()
        # the collections to read at the next pass; None: all of them
        self._due: set[str] | None = None
        self._stopped = False
        self.published = 0
        self.audited = 0
        """audit records moved to the audit collection"""
        self.flushed_at_stop = 0
        """events published after `stop()`: the outbox flushed at shutdown"""
        # confirmed by the broker but not yet cleared in the database (e.g. the database went
        # away in between): cleared without publishing again, so a database outage does not
        # duplicate events. Only a crash of this process in that window republishes them.
        self._confirmed: set[str] = set()

    async def backlog(self) -> dict[str, int]:
        """Documents whose events are not published yet, per collection (for `/metrics`)."""
        return {c.name: await c.count_documents(PENDING) for c in self._collections}

    def wake(self, *collections: str) -> None:
        """Called by writers after a write with events: publish now rather than at the next
        poll. Naming the collections written spares the relay reading the others."""
        if not collections:
            self._due = None
        elif self._due is not None:
            self._due.update(collections)
        self._wakeup.set()

    def _take_due(self) -> list[AsyncCollection[Doc]]:
        due, self._due = self._due, set()
        return [c for c in self._collections if due is None or c.name in due]

    def stop(self) -> None:
        """Ask `run` to publish what is pending and return (the service is shutting down; some
        libraries swallow a task's cancellation, so this is a flag, not only a cancel)."""
        self._stopped = True
        self._wakeup.set()

    async def run(self) -> None:
        """Publish pending events until `stop()`; then flush what is pending and return — or
        return at the first failure then (the broker or the database is away: the next start
        publishes it)."""
        delay = 0.2
        task = asyncio.current_task()
        while True:
            stopping = self._stopped
            # stopping: read every collection, until nothing moves
            collections = self._collections if stopping else self._take_due()
            before = self.published
            audited = self.audited
            try:
                full = await self._pass(collections)
            except asyncio.CancelledError:
                if task is not None and task.cancelling():
                    raise
                # a CancelledError we did not ask for (a library's internal future): retry
                log.warning("outbox relay interrupted, retrying")
                self._due = None
                await asyncio.sleep(delay)
                continue
            except Exception as exc:
                if task is not None and task.cancelling():
                    # a library turned our cancellation into another error: still stop
                    raise asyncio.CancelledError from exc
                if stopping:
                    log.warning(
                        "outbox not flushed at shutdown, the next start publishes it",
                        extra={"error": repr(exc)[:300]},
                    )
                    return
                level = logging.WARNING if isinstance(exc, TRANSIENT_DB_ERRORS) else logging.ERROR
                log.log(level, "outbox relay failed, retrying", extra={"error": repr(exc)[:300]})
                self._due = None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.2
            if stopping:
                moved = self.published - before
                self.flushed_at_stop += moved
                if moved == 0 and self.audited == audited and not full:
                    return  # nothing pending any more
                continue
            if full:  # more is waiting there: go on at once
                if self._due is not None:
                    self._due.update(full)
                continue
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout=self._idle)
            except TimeoutError:
                self._due = None  # the periodic pass reads every collection
            else:
                # let the writes of concurrent requests join this one's batch
                await asyncio.sleep(self._gather)
            self._wakeup.clear()

    async def _publish_all(self, entries: list[tuple[Doc, Doc]]) -> None:
        """Publish concurrently (confirms pipelined); raise if any failed or timed out, in
        which case nothing is cleared and the whole batch is published again later."""
        if not entries:
            return
        tasks = [
            asyncio.ensure_future(
                self._publish(e["routing_key"], e["event_id"], e["body"].encode())
            )
            for _, e in entries
        ]
        for t in tasks:
            t.add_done_callback(_observe)
        try:
            _, pending = await asyncio.wait(tasks, timeout=self._publish_timeout)
        finally:
            # never wait for a cancelled publish: a client stuck on a dead connection may
            # take its time to give up, and the relay must move on
            for t in tasks:
                t.cancel()
        for (_, e), t in zip(entries, tasks, strict=True):
            if t.done() and not t.cancelled() and t.exception() is None:
                self._confirmed.add(e["event_id"])
        if pending:
            raise TimeoutError(f"{len(pending)} of {len(tasks)} publishes not confirmed in time")
        for t in tasks:
            if t.cancelled():  # the client cancels its confirmations when the connection drops
                raise ConnectionError("publish cancelled by the broker client")
            if (exc := t.exception()) is not None:
                raise exc

    async def relay_once(self) -> int:
        """Publish one batch from each collection; returns how many events were published."""
        before = self.published
        await self._pass(self._collections)
        return self.published - before

    async def _pass(self, collections: Sequence[AsyncCollection[Doc]]) -> set[str]:
        """Publish one batch from each of `collections`; returns the names of those whose
        batch was full (more may be pending there)."""
        full: set[str] = set()
        for coll in collections:
            docs = await coll.find(PENDING, {"outbox": 1, "outbox_seq": 1, AUDIT_FIELD: 1}).to_list(
                self._batch
            )
            if not docs:
                continue
            if len(docs) >= self._batch:
                full.add(coll.name)
            entries = [(doc, e) for doc in docs for e in doc.get("outbox") or []]
            records = [r for doc in docs for r in doc.get(AUDIT_FIELD) or []]
            # both must succeed before the documents are cleared; each is safe to repeat
            outcomes = await asyncio.gather(
                self._publish_all(
                    [(d, e) for d, e in entries if e["event_id"] not in self._confirmed]
                ),
                self.move_audit(records),
                return_exceptions=True,
            )
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome
            await self.clear(coll, docs)
            self._confirmed.difference_update(e["event_id"] for _, e in entries)
            self.published += len(entries)
            self.audited += len(records)
        return full

    async def move_audit(self, records: list[Doc]) -> None:
        """Insert the documents' pending audit records into the audit collection: one
        command; a record already there (moved by a pass interrupted before its clear) is
        a duplicate `_id`, i.e. done."""
        if not records:
            return
        if self._audit is None:
            raise RuntimeError("documents hold audit records but the relay has no audit log")
        try:
            await self._audit.insert_many(records, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise

    async def clear(self, coll: AsyncCollection[Doc], docs: list[Doc]) -> None:
        """Empty the outbox and the pending audit records of `docs`, which are published
        and moved: one write per batch when nobody touched them meanwhile, else pull only
        what this pass saw."""
        cleared = await coll.bulk_write(
            [
                UpdateOne(
                    {"_id": doc["_id"], "outbox_seq": doc.get("outbox_seq")},
                    {"$set": {"outbox": [], "outbox_pending": False, **_no_audit(doc)}},
                )
                for doc in docs
            ],
            ordered=False,
        )
        if cleared.matched_count < len(docs):
            # some documents changed meanwhile (new events appended): pull only ours
            pulls = [
                UpdateOne(
                    {"_id": doc["_id"], "outbox_seq": {"$ne": doc.get("outbox_seq")}},
                    {"$pull": pull},
                )
                for doc in docs
                if (pull := _pull_seen(doc))
            ]
            if pulls:
                await coll.bulk_write(pulls, ordered=False)


def _no_audit(doc: Doc) -> Doc:
    return {AUDIT_FIELD: []} if AUDIT_FIELD in doc else {}


def _pull_seen(doc: Doc) -> Doc:
    """The `$pull` of the events and audit records of `doc` as the relay read it."""
    pull: Doc = {}
    if ids := [e["event_id"] for e in doc.get("outbox") or []]:
        pull["outbox"] = {"event_id": {"$in": ids}}
    if records := [r["_id"] for r in doc.get(AUDIT_FIELD) or []]:
        pull[AUDIT_FIELD] = {"_id": {"$in": records}}
    return pull


def _observe(task: asyncio.Future[None]) -> None:
    """Mark a publish task's error as seen (it is reported by `_publish_all`)."""
    if not task.cancelled():
        task.exception()

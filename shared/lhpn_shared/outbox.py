"""Transactional outbox inside the changed document (STYLE principle 6).

A writer puts the state change and its events in ONE document write:

    await coll.update_one(
        {"_id": key, ...},
        with_outbox({"$set": {...state...}}, [event]),
    )

`with_outbox` appends the events to the document's `outbox` array, sets `outbox_pending`
and bumps `outbox_seq` (`outbox_fields` does the same for an insert). The relay finds
pending documents through the `outbox_pending` index, publishes every event with publisher
confirms, then clears what it published — in one write when nobody touched the document
meanwhile (same `outbox_seq`), with `$pull` otherwise.
A crash between publish and clear republishes: consumers dedupe on `event_id`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection

from .contracts.events import Envelope
from .mongo import TRANSIENT_DB_ERRORS, Doc

log = logging.getLogger("lhpn.outbox")


def outbox_entry(envelope: Envelope) -> Doc:
    return {
        "event_id": str(envelope.event_id),
        "routing_key": envelope.routing_key,
        "body": envelope.model_dump_json(),
    }


def outbox_fields(events: Sequence[Envelope]) -> Doc:
    """Fields for a document inserted together with its events."""
    return {
        "outbox": [outbox_entry(e) for e in events],
        "outbox_pending": bool(events),
        "outbox_seq": 1,
    }


def with_outbox(update: dict[str, Any], events: Sequence[Envelope]) -> dict[str, Any]:
    """Add the operators that append `events` to a document's outbox to `update`."""
    update.setdefault("$set", {})["outbox_pending"] = True
    update.setdefault("$push", {})["outbox"] = {"$each": [outbox_entry(e) for e in events]}
    update.setdefault("$inc", {})["outbox_seq"] = 1
    return update


PENDING: Doc = {"outbox_pending": True}


async def ensure_outbox_index(coll: AsyncCollection[Doc]) -> None:
    await coll.create_index([("outbox_pending", ASCENDING)])


Publish = Callable[[str, str, bytes], Awaitable[None]]
"""publish(routing_key, event_id, body) — returns once the broker confirmed."""


class OutboxRelay:
    """Publishes pending outbox events of some collections; one instance per service process."""

    def __init__(
        self,
        collections: Sequence[AsyncCollection[Doc]],
        publish: Publish,
        *,
        batch: int = 500,
        idle_seconds: float = 1.0,
        publish_timeout: float = 10.0,
    ) -> None:
        self._collections = list(collections)
        self._publish = publish
        self._batch = batch
        self._idle = idle_seconds
        self._publish_timeout = publish_timeout
        self._wakeup = asyncio.Event()
        self._stopped = False
        self.published = 0

    def wake(self) -> None:
        """Called by writers after a write with events: publish now rather than at the next poll."""
        self._wakeup.set()

    def stop(self) -> None:
        """Ask `run` to return (some libraries swallow a task's cancellation)."""
        self._stopped = True
        self._wakeup.set()

    async def run(self) -> None:
        delay = 0.2
        task = asyncio.current_task()
        while not self._stopped:
            try:
                moved = await self.relay_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if task is not None and task.cancelling():
                    # a library turned our cancellation into another error: still stop
                    raise asyncio.CancelledError from exc
                level = logging.WARNING if isinstance(exc, TRANSIENT_DB_ERRORS) else logging.ERROR
                log.log(level, "outbox relay failed, retrying", extra={"error": repr(exc)[:300]})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.2
            if moved == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), timeout=self._idle)
                self._wakeup.clear()

    async def relay_once(self) -> int:
        """Publish one batch from each collection; returns how many events were published."""
        total = 0
        for coll in self._collections:
            docs = await coll.find(PENDING, {"outbox": 1, "outbox_seq": 1}).to_list(self._batch)
            if not docs:
                continue
            entries = [(doc, e) for doc in docs for e in doc.get("outbox") or []]
            results = await asyncio.wait_for(
                asyncio.gather(
                    *(
                        self._publish(e["routing_key"], e["event_id"], e["body"].encode())
                        for _, e in entries
                    ),
                    return_exceptions=True,
                ),
                timeout=self._publish_timeout,
            )
            failed = [r for r in results if isinstance(r, BaseException)]
            if failed:
                # nothing is cleared: the whole batch is published again (consumers dedupe)
                raise failed[0]
            cleared = await coll.bulk_write(
                [
                    UpdateOne(
                        {"_id": doc["_id"], "outbox_seq": doc.get("outbox_seq")},
                        {"$set": {"outbox": [], "outbox_pending": False}},
                    )
                    for doc in docs
                ],
                ordered=False,
            )
            if cleared.matched_count < len(docs):
                # some documents changed meanwhile (new events appended): pull only ours
                await coll.bulk_write(
                    [
                        UpdateOne(
                            {"_id": doc["_id"], "outbox_seq": {"$ne": doc.get("outbox_seq")}},
                            {"$pull": {"outbox": {"event_id": {"$in": ids}}}},
                        )
                        for doc in docs
                        if (ids := [e["event_id"] for e in doc.get("outbox") or []])
                    ],
                    ordered=False,
                )
            total += len(entries)
        self.published += total
        return total

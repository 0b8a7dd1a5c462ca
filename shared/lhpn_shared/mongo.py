"""Mongo client factory (PyMongo's AsyncMongoClient) and the failures that mean 'try later'."""

from __future__ import annotations

import asyncio
from datetime import UTC
from typing import Any

from bson.codec_options import CodecOptions
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    AutoReconnect,
    BulkWriteError,
    ConnectionFailure,
    DuplicateKeyError,
    NetworkTimeout,
    ServerSelectionTimeoutError,
    WriteError,
)

from .settings import ServiceSettings

TRANSIENT_DB_ERRORS: tuple[type[Exception], ...] = (
    ConnectionFailure,
    AutoReconnect,
    NetworkTimeout,
    ServerSelectionTimeoutError,
)

Doc = dict[str, Any]


def make_client(settings: ServiceSettings) -> AsyncMongoClient[Doc]:
    """A client that returns aware UTC datetimes and stores UUIDs in the standard form.

    Short timeouts: when the database is down a request should answer 503 quickly rather
    than hang (SPEC §9.2).
    """
    return AsyncMongoClient(
        settings.mongo_url,
        tz_aware=True,
        tzinfo=UTC,
        uuidRepresentation="standard",
        serverSelectionTimeoutMS=settings.mongo_timeout_ms,
        connectTimeoutMS=settings.mongo_timeout_ms,
        socketTimeoutMS=max(settings.mongo_timeout_ms * 4, 10_000),
        appname=settings.service_name,
    )


def database(client: AsyncMongoClient[Doc], name: str) -> AsyncDatabase[Doc]:
    return client.get_database(
        name, codec_options=CodecOptions(tz_aware=True, tzinfo=UTC, uuid_representation=4)
    )


async def ping(client: AsyncMongoClient[Doc]) -> bool:
    try:
        await client.admin.command("ping")
    except TRANSIENT_DB_ERRORS:
        return False
    return True


DUPLICATE_KEY = 11000


class GroupedInserts:
    """`insert_one` for writers that run concurrently, grouped: the documents of the callers
    waiting at the same moment go to the database as one unordered `insert_many` (one command,
    one commit on the development database, where a commit per write is the limit) instead of
    one command each.

    Each caller still returns only once its own document is stored, and gets its own outcome:
    `DuplicateKeyError` for a document whose `_id` (or another unique key) exists — the others
    of the batch are stored —, `WriteError` for another refusal of that document, the
    command's error (e.g. the database is down) for every document of a failed batch. Nothing
    waits for company: a document goes with the next command — at once when none is under
    way (with those handed over in the same turn of the event loop), else as soon as the one
    under way returns, together with every other that arrived meanwhile.

    The batches are written by a task of their own, not by a caller: a caller cancelled while
    waiting (a client that went away) does not cancel the write of the others' documents, nor
    of its own, which may then be stored as if it had not been cancelled.
    """

    def __init__(self, coll: AsyncCollection[Doc], max_batch: int = 500) -> None:
        self._coll = coll
        self._max = max_batch
        self._waiting: list[tuple[Doc, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.batches = 0
        """insert_many commands sent (for tests and measures)"""

    async def insert_one(self, doc: Doc) -> None:
        loop = asyncio.get_running_loop()
        if self._writer is not None and self._writer.get_loop() is not loop:
            # left by an event loop that was closed (tests run several): so are its writers
            self._writer = None
            self._waiting = [(d, f) for d, f in self._waiting if f.get_loop() is loop]
        stored: asyncio.Future[None] = loop.create_future()
        self._waiting.append((doc, stored))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_waiting())
        await stored

    async def _write_waiting(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[: self._max], self._waiting[self._max :]
            try:
                await self._coll.insert_many([doc for doc, _ in batch], ordered=False)
            except BulkWriteError as exc:
                try:
                    _settle_refusals(batch, exc)
                except Exception as odd:  # a reply not understood: fail its writers, never hang
                    for _, stored in batch:
                        _settle(stored, odd)
            except BaseException as exc:  # the whole batch failed (or this task was cancelled)
                for _, stored in batch:
                    _settle(stored, exc)
                if not isinstance(exc, Exception):
                    for _, stored in self._waiting:
                        _settle(stored, exc)
                    self._waiting = []
                    raise
            else:
                for _, stored in batch:
                    _settle(stored, None)
            finally:
                self.batches += 1


def _settle_refusals(batch: list[tuple[Doc, asyncio.Future[None]]], exc: BulkWriteError) -> None:
    """Each writer of a batch the database partly refused gets its own document's outcome."""
    refused = {e["index"]: e for e in exc.details.get("writeErrors", [])}
    # stored but the write concern not met: an error for each, as insert_one gives
    unsure = exc if exc.details.get("writeConcernErrors") else None
    for i, (_, stored) in enumerate(batch):
        if (error := refused.get(i)) is None:
            _settle(stored, unsure)
        elif error.get("code") == DUPLICATE_KEY:
            _settle(stored, DuplicateKeyError(error.get("errmsg", ""), DUPLICATE_KEY, error))
        else:
            _settle(stored, WriteError(error.get("errmsg", ""), error.get("code"), error))


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():  # its caller was cancelled
        return
    if error is None:
        future.set_result(None)
    elif isinstance(error, asyncio.CancelledError):
        future.cancel()
    else:
        future.set_exception(error)

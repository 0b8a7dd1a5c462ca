"""Aggregation's read models in its own database, and every read and write the service makes.

Collections:
- `units`, `plans` (`_id` unit_id, plan_id): the latest revision of each, from
  `unit.upserted` / `plan.published`;
- `activities` (activity_id): `ActivityState`; `reports` (`<unit_id>|<report_type>|<period>`):
  `ReportState`; `cases` (case_id): `CaseState`, without personal data;
- `activity_counters`, `case_counters` (`<unit_id>/<year>`): `UnitActivityCounters` /
  `UnitCaseCounters` of one unit and year;
- `journal` (batch token): a batch's documents, stored before they are written (see `service`);
- `events` (batch token): the archive, the raw events of each batch, replayed by `rebuild`;
- `meta`: `stamp`, the token of the last batch written; `rebuild`, while one runs.

Every read-model document is `{"_id", "json": <the model as JSON>}` (counters also carry
`unit_id` and `year`), and is found by `_id` only. Measured on the development server
(mongo-java-server), the cost of reading or writing a document grows with its number of fields,
not its bytes: a unit-year of counters as nested fields took 3.6–5.5 ms per `$inc`, the same as
one JSON string 0.1–0.2 ms per replace; any filter besides `_id` scans the collection.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bson import Binary
from pymongo import InsertOne, ReplaceOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from lhpn_shared.mongo import Doc

STATE_COLLECTIONS = ("units", "plans", "activities", "reports", "cases")
COUNTER_COLLECTIONS = ("activity_counters", "case_counters")
READ_MODELS = (*STATE_COLLECTIONS, *COUNTER_COLLECTIONS, "journal")
ID_CHUNK = 200
"""`_id: {$in: …}` lookups are fast up to a few hundred ids, then slow down: chunk them."""
READ_BATCH = 500
"""Documents per reply of a full read (the development server does not cap a reply's size)."""
ARCHIVE_CHUNK_BYTES = 64_000_000
"""Raw bytes per archive document, compressed well under the 16 MB document limit."""
JOURNAL_LIMIT_BYTES = 12_000_000
"""Compressed bytes per journal document."""
DUPLICATE_KEY = 11000


def report_doc_id(unit_id: str, report_type: str, period: str) -> str:
    return f"{unit_id}|{report_type}|{period}"


def counters_doc_id(unit_id: str, year: int) -> str:
    return f"{unit_id}/{year}"


class JournalTooLarge(ValueError):
    """The batch's writes do not fit one journal document: write it in smaller batches."""


@dataclass
class Writes:
    """The documents one batch writes, whole: writing them a second time changes nothing."""

    token: str
    docs: dict[str, dict[str, Doc]] = field(
        default_factory=lambda: {name: {} for name in (*STATE_COLLECTIONS, *COUNTER_COLLECTIONS)}
    )
    stored: set[str] | None = None
    """`<collection>/<_id>` of the documents that existed when the batch loaded them (the others
    are inserted: cheaper than an upsert); None: unknown, replace them all (a journal)"""

    @property
    def empty(self) -> bool:
        return not any(self.docs.values())

    @property
    def counters_changed(self) -> bool:
        return any(self.docs[name] for name in COUNTER_COLLECTIONS)

    def to_journal(self, at: datetime) -> Doc:
        entries = [[name, doc] for name, docs in self.docs.items() for doc in docs.values()]
        packed = zlib.compress(json.dumps(entries, ensure_ascii=False).encode(), 1)
        if len(packed) > JOURNAL_LIMIT_BYTES:
            raise JournalTooLarge(f"{len(packed)} bytes")
        return {"_id": self.token, "at": at, "entries": Binary(packed)}

    @classmethod
    def from_journal(cls, doc: Doc) -> Writes:
        writes = cls(token=str(doc["_id"]))
        for name, entry in json.loads(zlib.decompress(doc["entries"])):
            writes.docs[name][entry["_id"]] = entry
        return writes


class AggregationStore:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.db = db
        self.journal = db["journal"]
        self.events = db["events"]
        self.meta = db["meta"]

    def coll(self, name: str) -> AsyncCollection[Doc]:
        return self.db[name]

    async def ensure_indexes(self) -> None:
        """Nothing beyond `_id`: every read is by `_id`, and the archive is read in full."""

    # ---- reads ----------------------------------------------------------------------------

    async def load(self, name: str, ids: Iterable[str]) -> dict[str, Doc]:
        """The documents of `ids` that exist, by `_id`."""
        unique = list(dict.fromkeys(ids))
        chunks = [unique[i : i + ID_CHUNK] for i in range(0, len(unique), ID_CHUNK)]
        coll = self.coll(name)
        found = await asyncio.gather(
            *(coll.find({"_id": {"$in": chunk}}).to_list(None) for chunk in chunks)
        )
        return {doc["_id"]: doc for docs in found for doc in docs}

    async def all_docs(self, name: str) -> list[Doc]:
        return await self.coll(name).find({}, batch_size=READ_BATCH).to_list(None)

    async def counters_of_year(self, name: str, year: int) -> list[Doc]:
        cursor = self.coll(name).find({"year": year}, batch_size=READ_BATCH)
        return await cursor.to_list(None)

    # ---- the writes of a batch ----------------------------------------------------------------

    async def write(self, writes: Writes) -> None:
        """One unordered bulk write per collection, one after the other (measured: concurrent
        bulk writes are three times slower on the development server). New documents are
        inserted, the others replaced; an insert that finds its document is retried as a
        replace (a journal written again, another writer)."""
        for name, docs in writes.docs.items():
            if not docs:
                continue
            stored, ordered = writes.stored, list(docs.items())
            ops: list[InsertOne[Doc] | ReplaceOne[Doc]] = [
                ReplaceOne({"_id": i}, doc, upsert=True)
                if stored is None or f"{name}/{i}" in stored
                else InsertOne(doc)
                for i, doc in ordered
            ]
            try:
                await self.coll(name).bulk_write(ops, ordered=False)
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if any(e.get("code") != DUPLICATE_KEY for e in errors):
                    raise
                again = [ordered[e["index"]] for e in errors]
                await self.coll(name).bulk_write(
                    [ReplaceOne({"_id": i}, doc, upsert=True) for i, doc in again], ordered=False
                )

    async def journal_put(self, journal: Doc) -> None:
        await self.journal.insert_one(journal)

    async def journal_pending(self) -> list[Writes]:
        """Journals left by a batch that did not finish (normally none: a tiny collection)."""
        docs = await self.journal.find({}).to_list(None)
        return [Writes.from_journal(doc) for doc in sorted(docs, key=lambda d: d["at"])]

    async def journal_done(self, token: str) -> None:
        await self.journal.delete_one({"_id": token})

    # ---- archive -------------------------------------------------------------------------------

    async def archive(self, token: str, at: datetime, bodies: Sequence[str]) -> None:
        """Keep the raw events of a batch for `rebuild`, compressed (a redelivered event may be
        kept twice: replaying it twice changes nothing)."""
        chunks: list[list[str]] = [[]]
        size = 0
        for body in bodies:
            if chunks[-1] and size + len(body) > ARCHIVE_CHUNK_BYTES:
                chunks.append([])
                size = 0
            chunks[-1].append(body)
            size += len(body)
        docs = [
            InsertOne(
                {
                    "_id": f"{token}.{n}" if n else token,
                    "at": at,
                    "count": len(chunk),
                    "events": Binary(zlib.compress(json.dumps(chunk).encode(), 1)),
                }
            )
            for n, chunk in enumerate(chunks)
            if chunk
        ]
        if docs:
            await self.events.bulk_write(docs, ordered=False)

    async def archive_size(self) -> int:
        """How many archive documents (batches) there are."""
        return await self.events.count_documents({})

    async def archived(self) -> AsyncIterator[list[str]]:
        """Every archived event body, one archive document at a time."""
        async for doc in self.events.find({}, batch_size=4):
            bodies: list[str] = json.loads(zlib.decompress(doc["events"]))
            yield bodies

    # ---- meta: the last batch written, a rebuild in progress --------------------------------

    async def read_meta(self) -> dict[str, Doc]:
        return {doc["_id"]: doc async for doc in self.meta.find({})}

    async def read_stamp(self) -> str | None:
        doc = await self.meta.find_one({"_id": "stamp"})
        return None if doc is None else str(doc["value"])

    async def write_stamp(self, value: str, at: datetime) -> None:
        await self.meta.replace_one({"_id": "stamp"}, {"value": value, "at": at}, upsert=True)

    async def set_rebuilding(self, at: datetime | None) -> None:
        if at is None:
            await self.meta.delete_one({"_id": "rebuild"})
        else:
            await self.meta.replace_one({"_id": "rebuild"}, {"started_at": at}, upsert=True)

    async def drop_read_models(self) -> None:
        for name in READ_MODELS:
            await self.db.drop_collection(name)


def state_doc(doc_id: str, model_json: str) -> Doc:
    return {"_id": doc_id, "json": model_json}


def counters_doc(unit_id: str, year: int, body: Mapping[str, object]) -> Doc:
    return {
        "_id": counters_doc_id(unit_id, year),
        "unit_id": unit_id,
        "year": year,
        "json": json.dumps(body, ensure_ascii=False, separators=(",", ":")),
    }


def counters_body(doc: Doc) -> dict[str, object]:
    """The counters as the domain reads them: `{"unit_id", "year", "kinds" | "months"}`."""
    return {"unit_id": doc["unit_id"], "year": doc["year"], **json.loads(doc["json"])}

"""Aggregation's read models in its own database, and every read and write the service makes.

Collections:
- `units`, `plans` (`_id` unit_id, plan_id): the latest revision of each, from
  `unit.upserted` / `plan.published`;
- `activities` (activity_id): `ActivityState`; `reports` (`<unit_id>|<report_type>|<period>`):
  `ReportState`; `cases` (case_id): `CaseState`, without personal data;
- `unit_years` (`<unit_id>/<year>`): the unit's rollups of one year (`domain.rollup.UnitYear`),
  one JSON string per part (`days`, `activities`, `cases`, `declared`, `plan:<plan_id>`), so a
  query reads (`projection`) and parses only the part it answers from;
- `nodes` (unit_id): the unit, its ancestors and its children, as the answers name them;
- `journal` (batch token, in chunks): a batch's documents, stored before they are written (see
  `service`);
- `events` (batch token): the archive, the raw events of each batch, replayed by `rebuild`;
- `meta`: `stamp`, the token of the last batch written; `years`, the years with rollups;
  `roots`, the units without a parent; `rebuild`, while one runs.

Every document is found by `_id` (full reads happen only when a plan is built from scratch and
when the writer loads the unit tree). Measured on the development server (mongo-java-server):
the cost of a document grows with its number of fields, not its bytes — one JSON string of
0.5 MB reads in under 1 ms, 2,000 small documents replace in 0.15 s, while `$in` lookups cost
about 0.1 ms per document and any filter besides `_id` scans the collection.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bson import Binary
from pydantic_core import to_json
from pymongo import InsertOne, ReplaceOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from lhpn_shared.mongo import Doc

STATE_COLLECTIONS = ("units", "plans", "activities", "reports", "cases")
DERIVED_COLLECTIONS = ("unit_years", "nodes")
READ_MODELS = (*STATE_COLLECTIONS, *DERIVED_COLLECTIONS, "journal")
ID_CHUNK = 200
"""`_id: {$in: …}` lookups are fast up to a few hundred ids, then slow down: chunk them."""
READ_BATCH = 500
"""Documents per reply of a full read (the development server does not cap a reply's size)."""
ARCHIVE_CHUNK_BYTES = 64_000_000
"""Raw bytes per archive document, compressed well under the 16 MB document limit."""
JOURNAL_LIMIT_BYTES = 12_000_000
"""Compressed bytes per journal document (a batch's journal is as many chunks as it needs)."""
DUPLICATE_KEY = 11000


def report_doc_id(unit_id: str, report_type: str, period: str) -> str:
    return f"{unit_id}|{report_type}|{period}"


def unit_year_id(unit_id: str, year: int) -> str:
    return f"{unit_id}/{year}"


def part_field(name: str) -> str:
    """The document field of a part: plan ids may hold characters field names may not."""
    return name.replace("%", "%25").replace(".", "%2E").replace("$", "%24")


def part_name(field_name: str) -> str:
    return field_name.replace("%24", "$").replace("%2E", ".").replace("%25", "%")


UNIT_YEAR_KEYS = ("_id", "unit_id", "year")


@dataclass
class Writes:
    """The documents one batch writes, whole: writing them a second time changes nothing."""

    token: str
    docs: dict[str, dict[str, Doc]] = field(
        default_factory=lambda: {name: {} for name in (*STATE_COLLECTIONS, *DERIVED_COLLECTIONS)}
    )
    stored: set[str] | None = None
    """`<collection>/<_id>` of the documents that existed when the batch loaded them (the others
    are inserted: cheaper than an upsert); None: unknown, replace them all (a journal)"""

    @property
    def empty(self) -> bool:
        return not any(self.docs.values())

    @property
    def derived_changed(self) -> bool:
        return any(self.docs[name] for name in DERIVED_COLLECTIONS)

    def to_journal(self, at: datetime) -> list[Doc]:
        """The journal of these writes: chunk documents, then the header that makes it whole
        (written last: a journal without its header was never complete and is dropped)."""
        entries = [(name, doc) for name, docs in self.docs.items() for doc in docs.values()]
        chunks: list[Doc] = []
        pending: list[tuple[str, Doc]] = []
        size = 0

        def flush() -> None:
            nonlocal size
            packed = zlib.compress(to_json(pending), 1)
            chunks.append(
                {
                    "_id": f"{self.token}.{len(chunks)}",
                    "token": self.token,
                    "entries": Binary(packed),
                }
            )
            pending.clear()
            size = 0

        for entry in entries:
            pending.append(entry)
            size += _rough_size(entry[1])
            if size >= 4 * JOURNAL_LIMIT_BYTES:  # JSON compresses about fourfold here
                flush()
        if pending or not chunks:
            flush()
        header = {"_id": self.token, "at": at, "chunks": len(chunks)}
        return [*chunks, header]

    @classmethod
    def from_journal(cls, header: Doc, chunks: Sequence[Doc]) -> Writes:
        writes = cls(token=str(header["_id"]))
        for chunk in chunks:
            for name, entry in json.loads(zlib.decompress(chunk["entries"])):
                writes.docs[name][entry["_id"]] = entry
        return writes


def _rough_size(doc: Doc) -> int:
    return sum(len(v) if isinstance(v, str) else 16 for v in doc.values())


class AggregationStore:
    """`prefix`: the collections of one partition (`p<k>.`, `AGGREGATION_PARTITIONS` > 1);
    none for the single stream (the layout of one partition is the layout of old)."""

    def __init__(self, db: AsyncDatabase[Doc], prefix: str = "") -> None:
        self.db = db
        self.prefix = prefix
        self.journal = db[f"{prefix}journal"]
        self.events = db[f"{prefix}events"]
        self.meta = db[f"{prefix}meta"]

    def coll(self, name: str) -> AsyncCollection[Doc]:
        return self.db[f"{self.prefix}{name}"]

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

    async def get(self, name: str, doc_id: str, parts: Sequence[str] | None = None) -> Doc | None:
        """One document by `_id`; with `parts`, only those fields (and the keys)."""
        projection = None if parts is None else {p: 1 for p in (*UNIT_YEAR_KEYS, *parts)}
        return await self.coll(name).find_one({"_id": doc_id}, projection=projection)

    async def all_docs(self, name: str) -> list[Doc]:
        return await self.coll(name).find({}, batch_size=READ_BATCH).to_list(None)

    async def unit_years_of(self, year: int) -> list[Doc]:
        """Every unit-year document of `year` (a scan: a plan built from scratch)."""
        cursor = self.coll("unit_years").find({"year": year}, batch_size=READ_BATCH)
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

    async def journal_put(self, journal: list[Doc]) -> None:
        """Store a journal: its chunks, then its header."""
        *chunks, header = journal
        if chunks:
            await self.journal.insert_many(chunks, ordered=True)
        await self.journal.insert_one(header)

    async def journal_pending(self) -> list[Writes]:
        """Journals left by a batch that did not finish (normally none: a tiny collection);
        the chunks of a journal whose header was never written are dropped."""
        docs = await self.journal.find({}).to_list(None)
        headers = sorted((d for d in docs if "chunks" in d), key=lambda d: d["at"])
        chunks: dict[str, list[Doc]] = {}
        for doc in docs:
            if "token" in doc:
                chunks.setdefault(str(doc["token"]), []).append(doc)
        whole = {str(h["_id"]) for h in headers}
        orphans = [t for t in chunks if t not in whole]
        if orphans:
            await self.journal.delete_many({"token": {"$in": orphans}})
        return [
            Writes.from_journal(
                h, sorted(chunks.get(str(h["_id"]), []), key=lambda c: str(c["_id"]))
            )
            for h in headers
        ]

    async def journal_done(self, token: str) -> None:
        await self.journal.delete_one({"_id": token})
        await self.journal.delete_many({"token": token})

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

    async def archived(self, ids: Sequence[str] | None = None) -> AsyncIterator[list[str]]:
        """Every archived event body (or those of the archive documents `ids`), one archive
        document at a time."""
        if ids is None:
            async for doc in self.events.find({}, batch_size=4):
                yield json.loads(zlib.decompress(doc["events"]))
            return
        for start in range(0, len(ids), 4):
            chunk = list(ids[start : start + 4])
            async for doc in self.events.find({"_id": {"$in": chunk}}):
                yield json.loads(zlib.decompress(doc["events"]))

    async def archive_ids(self) -> list[str]:
        return [str(d["_id"]) async for d in self.events.find({}, {"_id": 1})]

    async def drop_archived(self, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), ID_CHUNK):
            await self.events.delete_many({"_id": {"$in": list(ids[start : start + ID_CHUNK])}})

    # ---- meta: the last batch written, a rebuild in progress --------------------------------

    async def read_meta(self) -> dict[str, Doc]:
        return {doc["_id"]: doc async for doc in self.meta.find({})}

    async def read_stamp(self) -> str | None:
        doc = await self.meta.find_one({"_id": "stamp"})
        return None if doc is None else str(doc["value"])

    async def write_stamp(self, value: str, at: datetime) -> None:
        await self.meta.replace_one({"_id": "stamp"}, {"value": value, "at": at}, upsert=True)

    async def read_list(self, key: str) -> list[object]:
        doc = await self.meta.find_one({"_id": key})
        return [] if doc is None else list(doc["values"])

    async def write_list(self, key: str, values: Sequence[object]) -> None:
        await self.meta.replace_one({"_id": key}, {"values": list(values)}, upsert=True)

    async def set_rebuilding(self, at: datetime | None) -> None:
        if at is None:
            await self.meta.delete_one({"_id": "rebuild"})
        else:
            await self.meta.replace_one({"_id": "rebuild"}, {"started_at": at}, upsert=True)

    async def drop_read_models(self) -> None:
        for name in READ_MODELS:
            await self.db.drop_collection(f"{self.prefix}{name}")


def state_doc(doc_id: str, model_json: str) -> Doc:
    return {"_id": doc_id, "json": model_json}


def unit_year_doc(doc_id: str, unit_id: str, year: int, parts: Mapping[str, str]) -> Doc:
    """A unit-year document as stored: its keys and one JSON string per non-empty part."""
    return {
        "_id": doc_id,
        "unit_id": unit_id,
        "year": year,
        **{part_field(name): value for name, value in parts.items()},
    }


def unit_year_parts(doc: Doc) -> dict[str, str]:
    """part name → JSON of a stored unit-year document."""
    return {part_name(k): v for k, v in doc.items() if k not in UNIT_YEAR_KEYS}

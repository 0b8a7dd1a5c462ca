"""The aggregation service over an in-memory store: the real writer, projection and queries,
with dicts where MongoDB would be, for unit tests without I/O.

`consume(events, batch=…)` feeds envelopes in batches, as the consumer would; the answers are
then asked of the same `Aggregation` object the HTTP API uses.
"""

from __future__ import annotations

import copy
import json
import zlib
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from aggregation.batch import Event, parse_event
from aggregation.repository import Writes
from aggregation.service import Aggregation
from lhpn_shared.clock import Clock, FixedClock
from lhpn_shared.contracts.events import Envelope

Doc = dict[str, Any]
KEYS = ("_id", "unit_id", "year")


class MemoryStore:
    """What `AggregationStore` does, in dicts (same method names and results)."""

    def __init__(self) -> None:
        self.collections: dict[str, dict[str, Doc]] = {}
        self.journal: dict[str, Doc] = {}
        self.events: dict[str, list[str]] = {}
        self.meta: dict[str, Doc] = {}
        self.writes = 0

    def coll(self, name: str) -> dict[str, Doc]:
        return self.collections.setdefault(name, {})

    async def ensure_indexes(self) -> None:
        return None

    async def load(self, name: str, ids: Iterable[str]) -> dict[str, Doc]:
        coll = self.coll(name)
        return {i: dict(coll[i]) for i in dict.fromkeys(ids) if i in coll}

    async def get(self, name: str, doc_id: str, parts: Sequence[str] | None = None) -> Doc | None:
        doc = self.coll(name).get(doc_id)
        if doc is None:
            return None
        if parts is None:
            return dict(doc)
        return {k: v for k, v in doc.items() if k in KEYS or k in parts}

    async def all_docs(self, name: str) -> list[Doc]:
        return [dict(d) for d in self.coll(name).values()]

    async def unit_years_of(self, year: int) -> list[Doc]:
        return [dict(d) for d in self.coll("unit_years").values() if d["year"] == year]

    async def write(self, writes: Writes) -> None:
        for name, docs in writes.docs.items():
            coll = self.coll(name)
            for doc_id, doc in docs.items():
                coll[doc_id] = dict(doc)
                self.writes += 1

    async def journal_put(self, journal: list[Doc]) -> None:
        for doc in journal:
            self.journal[doc["_id"]] = copy.deepcopy(doc)

    async def journal_pending(self) -> list[Writes]:
        headers = sorted((d for d in self.journal.values() if "chunks" in d), key=lambda d: d["at"])
        out = []
        for header in headers:
            chunks = sorted(
                (d for d in self.journal.values() if d.get("token") == header["_id"]),
                key=lambda d: d["_id"],
            )
            out.append(Writes.from_journal(header, chunks))
        return out

    async def journal_done(self, token: str) -> None:
        for doc_id in [i for i, d in self.journal.items() if i == token or d.get("token") == token]:
            del self.journal[doc_id]

    async def archive(self, token: str, at: datetime, bodies: Sequence[str]) -> None:
        self.events[token] = list(bodies)

    async def archived(self, ids: Sequence[str] | None = None) -> AsyncIterator[list[str]]:
        for token in list(self.events) if ids is None else ids:
            yield list(self.events[token])

    async def archive_ids(self) -> list[str]:
        return list(self.events)

    async def drop_archived(self, ids: Sequence[str]) -> None:
        for token in ids:
            del self.events[token]

    async def read_meta(self) -> dict[str, Doc]:
        return {k: dict(v) for k, v in self.meta.items()}

    async def read_stamp(self) -> str | None:
        doc = self.meta.get("stamp")
        return None if doc is None else str(doc["value"])

    async def write_stamp(self, value: str, at: datetime) -> None:
        self.meta["stamp"] = {"_id": "stamp", "value": value, "at": at}

    async def read_list(self, key: str) -> list[object]:
        doc = self.meta.get(key)
        return [] if doc is None else list(doc["values"])

    async def write_list(self, key: str, values: Sequence[object]) -> None:
        self.meta[key] = {"_id": key, "values": list(values)}

    async def set_rebuilding(self, at: datetime | None) -> None:
        if at is None:
            self.meta.pop("rebuild", None)
        else:
            self.meta["rebuild"] = {"_id": "rebuild", "started_at": at}

    async def drop_read_models(self) -> None:
        self.collections.clear()
        self.journal.clear()

    def read_models(self) -> dict[str, dict[str, Doc]]:
        """Every derived and state document, for comparing two runs (parts parsed, so the
        comparison does not depend on how JSON was spelled)."""
        out: dict[str, dict[str, Doc]] = {}
        for name, docs in self.collections.items():
            out[name] = {
                i: {k: _parsed(v) for k, v in d.items()}
                for i, d in sorted(docs.items())
                if set(d) - set(KEYS)  # an emptied unit-year is the same as none
            }
        return out


def _parsed(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        return json.loads(value)
    if isinstance(value, bytes):
        return json.loads(zlib.decompress(value))
    return value


def events_of(envelopes: Iterable[Envelope]) -> list[Event]:
    return [
        parse_event(e.model_dump_json().encode(), publisher=None, owners=None) for e in envelopes
    ]


def service(
    store: MemoryStore | None = None, clock: Clock | None = None
) -> tuple[Aggregation, MemoryStore]:
    store = store or MemoryStore()
    clock = clock or FixedClock(datetime(2026, 1, 15, 3, 0, tzinfo=UTC))
    return Aggregation(store, clock), store  # type: ignore[arg-type]


async def consume(
    envelopes: Iterable[Envelope],
    *,
    batch: int = 500,
    svc: Aggregation | None = None,
    clock: Clock | None = None,
) -> Aggregation:
    """A fresh service (or `svc`) that has consumed `envelopes` in batches of `batch`."""
    if svc is None:
        svc, _ = service(clock=clock)
    events = events_of(envelopes)
    for start in range(0, len(events), batch):
        await svc.apply(events[start : start + batch])
    return svc


def store_of(svc: Aggregation) -> MemoryStore:
    store = svc.store
    assert isinstance(store, MemoryStore)
    return store

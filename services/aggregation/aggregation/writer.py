"""The consumer's use cases: apply a batch of events to the read models, finish a batch a crash
interrupted, rebuild everything from the archive.

Writing a batch (`Writer.apply`), safe to repeat after a crash at any point:
1. recover: a journal left by an unfinished batch is written again (step 4) first;
2. load the states the batch touches (by `_id`) and run each event through the pure core in
   arrival order (`domain.facts`: new state + deltas; stale and duplicate events change
   nothing); then project the batch onto the rollups (`projector`): load the unit-year
   documents and reports it needs, add and remove contributions along the chains of ancestors;
3. store everything the batch will write, as whole documents, in one journal (chunks, then a
   header written last);
4. replace the states, the unit-year documents and the nodes by `_id` with those whole
   documents and archive the raw events (one unordered bulk write per collection);
5. delete the journal; only then are the batch's messages acked.
A crash before 3 wrote nothing of the read models. A crash after 3 is finished by step 1 of the
next batch: writing the same whole documents again changes nothing, whatever had been written.
Redelivered events then find their states already written and change nothing, so no delta is
ever applied twice. One batch is written at a time: one flusher per process, and a single
active consumer on the queue.

The writer keeps the unit tree and the plans in memory (`TreeState`), loaded when it starts and
whenever another process wrote (the stamp in `meta` is not the one it wrote last), and the
unit-year documents it read or wrote last (`DocCache`): a batch needs the documents of the same
ancestors again and again, and reading a document costs the development server as much as
writing it. The cache is dropped whenever another process wrote, a batch failed, or a journal
was written again. The queries never use any of it: they read the documents.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import uuid4

from lhpn_shared.broker import Reject
from lhpn_shared.clock import Clock, to_millis
from lhpn_shared.contracts.plans import Plan
from lhpn_shared.contracts.units import Unit
from lhpn_shared.mongo import Doc

from .batch import STATE_MODELS, Batch, Event, parse_event, state_key, state_of
from .domain.facts import ReportState
from .domain.rollup import UnitYear
from .errors import Rebuilding
from .projector import Docs, Needs, Projection, TreeState, node
from .repository import (
    AggregationStore,
    Writes,
    state_doc,
    unit_year_doc,
    unit_year_parts,
)

log = logging.getLogger("aggregation")


CACHED_DOCUMENTS = 100_000
"""Unit-year documents the writer keeps (a national year is about 11,400 of them)."""


class DocCache:
    """The unit-year documents as stored (parsed as far as they were used), or known absent
    (None); least recently used first. Only documents exactly as written go in: those of a
    batch whose writes all succeeded."""

    def __init__(self, size: int = CACHED_DOCUMENTS) -> None:
        self.size = size
        self.docs: OrderedDict[str, UnitYear | None] = OrderedDict()

    def take(self, ids: Iterable[str]) -> tuple[dict[str, UnitYear | None], list[str]]:
        """(the cached ones, the ids to read)."""
        found: dict[str, UnitYear | None] = {}
        missing: list[str] = []
        for doc_id in ids:
            if doc_id in self.docs:
                self.docs.move_to_end(doc_id)
                found[doc_id] = self.docs[doc_id]
            else:
                missing.append(doc_id)
        return found, missing

    def put(self, docs: Mapping[str, UnitYear | None]) -> None:
        for doc_id, doc in docs.items():
            self.docs[doc_id] = doc
            self.docs.move_to_end(doc_id)
        while len(self.docs) > self.size:
            self.docs.popitem(last=False)

    def clear(self) -> None:
        self.docs.clear()


class Writer:
    def __init__(self, store: AggregationStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self.cache = DocCache()
        self.tree: TreeState | None = None
        self.plans: dict[str, Plan] = {}
        self.years: set[int] = set()
        self.stamp: str | None = None
        """the stamp this writer wrote last (another one: reload)"""

    def now(self) -> datetime:
        return to_millis(self.clock.now())

    async def load(self) -> None:
        """The unit tree, the plans and the years, as stored; and the documents of the latest
        year, which the next batches will need (one scan instead of many reads)."""
        units = [state_of(Unit, d) for d in await self.store.all_docs("units")]
        plans = [state_of(Plan, d) for d in await self.store.all_docs("plans")]
        years = await self.store.read_list("years")
        self.tree = TreeState.of(units)
        self.plans = {p.plan_id: p for p in plans}
        self.years = {int(str(y)) for y in years}
        self.stamp = await self.store.read_stamp()
        self.cache.clear()
        if self.years:
            docs = await self.store.unit_years_of(max(self.years))
            self.cache.put(
                {
                    d["_id"]: UnitYear(
                        str(d["unit_id"]), int(d["year"]), {}, set(), unit_year_parts(d)
                    )
                    for d in docs[: self.cache.size]
                }
            )

    async def apply(self, events: Sequence[Event]) -> list[bool]:
        """Apply a batch of events (see the module docstring); returns, per event, whether it
        changed anything. Raises `Rebuilding` while a rebuild runs, and the database's errors."""
        meta = await self.store.read_meta()
        if "rebuild" in meta:
            self.tree = None
            raise Rebuilding("the read models are being rebuilt")
        await self.recover()
        stamp = meta.get("stamp", {}).get("value")
        if self.tree is None or stamp != self.stamp:
            await self.load()
        try:
            return await self._apply(events, archive=True)
        except BaseException:
            self.cache.clear()  # what reached the database is unknown: read it again
            raise

    async def recover(self) -> int:
        """Finish the batches a crash interrupted; returns how many there were."""
        pending = await self.store.journal_pending()
        for writes in pending:
            await self.store.write(writes)
            await self.store.journal_done(writes.token)
            await self.store.write_stamp(writes.token, self.now())
            self.tree = None  # the tree may have changed: read it again
            self.cache.clear()
            log.warning("unfinished batch written again", extra={"token": writes.token})
        return len(pending)

    async def _apply(self, events: Sequence[Event], *, archive: bool) -> list[bool]:
        if self.tree is None:
            await self.load()
        assert self.tree is not None
        token, now = uuid4().hex, self.now()
        wanted: dict[str, list[str]] = {name: [] for name in STATE_MODELS}
        for event in events:
            name, doc_id = state_key(event.data)
            wanted[name].append(doc_id)
        batch = Batch(token, await self._load(wanted))
        changed = [batch.apply(event.data) for event in events]
        plan_changes = batch.plan_changes()
        plans = {**self.plans, **{i: new for i, (_, new) in plan_changes.items()}}
        projection = Projection(
            self.tree,
            batch.unit_changes(),
            plans,
            plan_changes,
            batch.activity_deltas,
            batch.case_deltas,
            batch.report_changes(),
            self.years,
        )
        needs = projection.needs()
        docs, reports, loaded_ids = await self._load_needs(needs)
        projection.run(docs, reports)
        writes = self._writes(token, batch, projection, docs, loaded_ids)
        years = self.years | {d.year for d in docs.changed()}
        journal = writes.to_journal(now) if writes.derived_changed else None
        if journal is not None:
            await self.store.journal_put(journal)
        await self.store.write(writes)
        if years != self.years:
            await self.store.write_list("years", sorted(years))
        if projection.unit_changes:
            await self.store.write_list("roots", projection.after.tree.roots())
        if archive:
            await self.store.archive(token, now, [e.body for e in events])
        if journal is not None:
            await self.store.journal_done(token)
        if not writes.empty:
            await self.store.write_stamp(token, now)
            self.stamp = token
        written = writes.docs["unit_years"]
        kept: dict[str, UnitYear | None] = {}
        for doc_id, doc in docs.docs.items():
            doc.dirty.clear()  # as written: the next batch starts from them
            kept[doc_id] = doc if doc_id in written or doc_id not in docs.absent else None
        self.cache.put(kept)
        self.tree, self.plans, self.years = projection.after, plans, years
        return changed

    async def _load(self, wanted: Mapping[str, Iterable[str]]) -> dict[str, dict[str, Doc]]:
        found = await asyncio.gather(*(self.store.load(n, ids) for n, ids in wanted.items()))
        return dict(zip(wanted, found, strict=True))

    async def _load_needs(self, needs: Needs) -> tuple[Docs, dict[str, ReportState], set[str]]:
        by_id = {i for i in needs.docs if _year_of(i) not in needs.whole_years}
        loaded, missing = self.cache.take(sorted(by_id))
        read = await self.store.load("unit_years", missing)
        for year in sorted(needs.whole_years):
            read.update({d["_id"]: d for d in await self.store.unit_years_of(year)})
        for doc_id in missing:
            loaded[doc_id] = None
        for doc_id, doc in read.items():
            loaded[doc_id] = UnitYear(
                str(doc["unit_id"]), int(doc["year"]), {}, set(), unit_year_parts(doc)
            )
        if needs.all_reports:
            report_docs = {d["_id"]: d for d in await self.store.all_docs("reports")}
        else:
            report_docs = await self.store.load("reports", needs.reports)
        reports = {i: state_of(ReportState, d) for i, d in report_docs.items()}
        stored = {i for i, d in loaded.items() if d is not None}
        return Docs(loaded, needs.whole_years), reports, stored

    def _writes(
        self,
        token: str,
        batch: Batch,
        projection: Projection,
        docs: Docs,
        loaded_ids: set[str],
    ) -> Writes:
        writes = Writes(token=token)
        for name, states in batch.state_writes().items():
            writes.docs[name] = states
        for doc in docs.changed():
            doc_id = f"{doc.unit_id}/{doc.year}"
            parts = {}
            for name in doc.part_names():
                dumped = doc.dumped(name)
                if dumped is not None:
                    parts[name] = dumped
            writes.docs["unit_years"][doc_id] = unit_year_doc(doc_id, doc.unit_id, doc.year, parts)
        tree = projection.after.tree
        node_ids = sorted(projection.node_ids())
        for unit_id in node_ids:
            writes.docs["nodes"][unit_id] = state_doc(unit_id, _json(node(tree, unit_id)))
        writes.stored = (
            batch.stored
            | {f"unit_years/{i}" for i in loaded_ids}
            | {f"nodes/{i}" for i in node_ids}
            | {"-"}
        )  # never empty: an empty set means "replace everything"
        return writes

    async def rebuild(
        self,
        *,
        batch_size: int,
        grace_seconds: float = 3.0,
        progress: Callable[[int, int, int], None] | None = None,
    ) -> int:
        """Drop the read models and replay the archive; returns the events replayed.

        Running consumers see the rebuild flag and requeue their batches until it is done
        (`grace_seconds` lets a batch already being written finish first); queries answer from
        what is rebuilt so far. A rebuild that dies leaves the flag: run it again.
        `progress(archive documents read, archive documents in all, events replayed)` is called
        after each archive document."""
        await self.store.set_rebuilding(self.now())
        await asyncio.sleep(grace_seconds)
        await self.store.drop_read_models()
        await self.store.write_list("years", [])
        await self.store.write_list("roots", [])
        self.tree = None
        self.cache.clear()
        replayed = 0
        pending: list[Event] = []
        total = await self.store.archive_size()
        read = 0
        async for bodies in self.store.archived():
            read += 1
            for body in bodies:
                try:
                    # archived once admitted from its owning service
                    pending.append(parse_event(body.encode("utf-8"), publisher=None, owners=None))
                except Reject as exc:  # archived events were valid when they arrived
                    log.warning("archived event skipped", extra={"reason": str(exc)})
            while len(pending) >= batch_size:
                await self._apply(pending[:batch_size], archive=False)
                replayed += batch_size
                del pending[:batch_size]
            if progress is not None:
                progress(read, max(total, read), replayed)
        if pending:
            await self._apply(pending, archive=False)
            replayed += len(pending)
        await self.store.write_stamp(uuid4().hex, self.now())
        await self.store.set_rebuilding(None)
        self.tree = None
        return replayed

    # ---- replacing the read models with other events (`reroute`) -----------------------------

    async def begin_replace(self) -> list[str]:
        """Set the rebuild flag and drop the read models, keeping the archive; returns the ids
        of its documents, to be dropped by `end_replace` once the events that replace them are
        stored (until then a repair run again reads them again)."""
        await self.store.set_rebuilding(self.now())
        old = await self.store.archive_ids()
        await self.store.drop_read_models()
        await self.store.write_list("years", [])
        await self.store.write_list("roots", [])
        self.tree = None
        self.cache.clear()
        return old

    async def apply_replacing(self, events: Sequence[Event]) -> None:
        """Apply and archive events while the rebuild flag is set (by `begin_replace`)."""
        if events:
            await self._apply(events, archive=True)

    async def end_replace(self, old: Sequence[str]) -> None:
        await self.store.drop_archived(old)
        await self.store.write_stamp(uuid4().hex, self.now())
        await self.store.set_rebuilding(None)
        self.tree = None


def _year_of(doc_id: str) -> int:
    return int(doc_id.rsplit("/", 1)[1])


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

"""Aggregation's use cases: apply a batch of events to the read models, answer the queries,
build the exports, rebuild from the archive. The same functions serve AMQP, HTTP, the command
line and the tests.

Writing a batch (`Aggregation.apply`), safe to repeat after a crash at any point:
1. recover: a journal left by an unfinished batch is written again (step 4) first;
2. load the states the batch touches (by `_id`), run each event through the pure core in
   arrival order (`domain.facts`: new state + deltas; stale and duplicate events change
   nothing), then load the counters documents the deltas name and apply the deltas to them;
3. store everything the batch will write, as whole documents, in ONE journal document;
4. replace the states and the counters documents by `_id` with those whole documents and
   archive the raw events (one unordered bulk write per collection);
5. delete the journal; only then are the batch's messages acked.
A crash before 3 wrote nothing of the read models. A crash after 3 is finished by step 1 of the
next batch: writing the same whole documents again changes nothing, whatever had been written.
Redelivered events then find their states already written and change nothing, so no delta is
ever applied twice. One batch is written at a time: one flusher per process, and a single
active consumer on the queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any
from uuid import uuid4

from lhpn_shared.broker import Reject
from lhpn_shared.clock import LOCAL_TZ, Clock, to_millis
from lhpn_shared.contracts.plans import Plan
from lhpn_shared.contracts.units import Unit, UnitTree
from lhpn_shared.mongo import Doc
from lhpn_shared.periods import BadPeriod, period_bounds

from .batch import STATE_MODELS, Batch, Event, counters_named, parse_event, state_key, state_of
from .domain.case_stats import CaseStats, case_stats
from .domain.compliance import ComplianceResult, compliance
from .domain.facts import ReportState, UnitActivityCounters, UnitCaseCounters
from .domain.indicators import IndicatorsResult, indicators
from .domain.rates import ReportingRates, all_reporting_rates, reporting_rates
from .exports.docx import heading_for, thematic_report_docx
from .exports.xlsx import compliance_workbook, indicators_workbook
from .repository import (
    AggregationStore,
    JournalTooLarge,
    counters_body,
    counters_doc_id,
    report_doc_id,
)
from .view import ReadView

log = logging.getLogger("aggregation")


class NotFound(Exception):
    """An unknown plan, unit or schedule period: 404 with this message."""


class BadInput(Exception):
    """A parameter that cannot be answered (a bad period, an instant without time zone): 422."""


class Rebuilding(Exception):
    """`rebuild` is replaying the archive: batches wait (their messages are requeued)."""


class Aggregation:
    def __init__(self, store: AggregationStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self.view = ReadView(store)

    def now(self) -> datetime:
        return to_millis(self.clock.now())

    # ---- writing ----------------------------------------------------------------------------

    async def apply(self, events: Sequence[Event]) -> list[bool]:
        """Apply a batch of events (see the module docstring); returns, per event, whether it
        changed anything. Raises `Rebuilding` while a rebuild runs, and the database's errors."""
        meta = await self.store.read_meta()
        if "rebuild" in meta:
            raise Rebuilding("the read models are being rebuilt")
        await self.recover()
        return await self._apply(events, archive=True)

    async def recover(self) -> int:
        """Finish the batches a crash interrupted; returns how many there were."""
        pending = await self.store.journal_pending()
        for writes in pending:
            async with self.view.lock:
                await self.store.write(writes)
                await self.store.journal_done(writes.token)
                self.view.invalidate()
                await self.store.write_stamp(writes.token, self.now())  # other readers reload
            log.warning("unfinished batch written again", extra={"token": writes.token})
        return len(pending)

    async def _apply(self, events: Sequence[Event], *, archive: bool) -> list[bool]:
        token, now = uuid4().hex, self.now()
        wanted: dict[str, list[str]] = {name: [] for name in STATE_MODELS}
        for event in events:
            name, doc_id = state_key(event.data)
            wanted[name].append(doc_id)
        guessed = counters_named(events)  # loaded with the states: most deltas hit these
        states, counters = await asyncio.gather(self._load(wanted), self._load(guessed))
        batch = Batch(token, states)
        changed = [batch.apply(event.data) for event in events]
        missing = {
            name: set(ids) - set(guessed[name]) for name, ids in batch.counters_wanted().items()
        }
        for name, docs in (await self._load(missing)).items():
            counters[name].update(docs)
        writes = batch.writes(counters)
        try:
            journal = writes.to_journal(now) if writes.counters_changed else None
        except JournalTooLarge:
            half = len(events) // 2
            if not half:
                raise
            first = await self._apply(events[:half], archive=archive)
            return first + await self._apply(events[half:], archive=archive)
        async with self.view.lock:
            try:
                if journal is not None:
                    await self.store.journal_put(journal)
                await self.store.write(writes)
                if archive:
                    await self.store.archive(token, now, [e.body for e in events])
                if journal is not None:
                    await self.store.journal_done(token)
                if not writes.empty:
                    self.view.absorb(batch, token)
                    await self.store.write_stamp(token, now)
            except BaseException:
                self.view.invalidate()
                raise
        return changed

    async def _load(self, wanted: Mapping[str, Iterable[str]]) -> dict[str, dict[str, Doc]]:
        found = await asyncio.gather(*(self.store.load(n, ids) for n, ids in wanted.items()))
        return dict(zip(wanted, found, strict=True))

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
        return replayed

    # ---- reading ------------------------------------------------------------------------------

    async def unit_tree(self) -> UnitTree:
        await self.view.fresh()
        return self.view.tree

    def _unit(self, unit_id: str) -> Unit:
        unit = self.view.units.get(unit_id)
        if unit is None:
            raise NotFound(f"Không có đơn vị mã '{unit_id}'.")
        return unit

    def _plan(self, plan_id: str) -> Plan:
        plan = self.view.plans.get(plan_id)
        if plan is None:
            raise NotFound(f"Không có kế hoạch '{plan_id}'.")
        return plan

    async def compliance(
        self, plan_id: str, unit_id: str, as_of: datetime, *, with_units: bool = False
    ) -> ComplianceResult:
        _aware(as_of)
        await self.view.fresh()
        plan, _, tree = self._plan(plan_id), self._unit(unit_id), self.view.tree
        days = await self.view.days(plan.year)
        return compliance(plan, tree, unit_id, as_of, days, with_units=with_units)

    async def reporting_rates(
        self, report_type: str, period: str, unit_id: str, plan_id: str | None = None
    ) -> ReportingRates:
        await self.view.fresh()
        self._unit(unit_id)
        plan, tree = self._schedule_plan(report_type, period, plan_id), self.view.tree
        reports = await self._reports(
            report_doc_id(u, report_type, period) for u in tree.subtree(unit_id)
        )
        return reporting_rates(plan, tree, unit_id, report_type, period, reports)

    def _schedule_plan(self, report_type: str, period: str, plan_id: str | None) -> Plan:
        plans = [self._plan(plan_id)] if plan_id else list(self.view.plans.values())
        for plan in sorted(plans, key=lambda p: (-p.year, p.plan_id)):
            schedule = plan.schedule(report_type)
            if schedule is not None and schedule.period(period) is not None:
                return plan
        where = f"kế hoạch '{plan_id}'" if plan_id else "các kế hoạch đã ban hành"
        raise NotFound(f"Không có kỳ báo cáo '{report_type}' kỳ '{period}' trong {where}.")

    async def indicators(
        self, unit_id: str, period: str, report_type: str | None = None
    ) -> IndicatorsResult:
        start, _ = _period(period)
        await self.view.fresh()
        self._unit(unit_id)
        tree = self.view.tree
        units = tree.subtree(unit_id)
        types = {report_type} if report_type else self._report_types()
        ids = [report_doc_id(u, t, period) for u in units for t in sorted(types)]
        counters = await self._counters("activity_counters", units, start.year)
        return indicators(
            tree,
            unit_id,
            period,
            {u: UnitActivityCounters.from_document(c) for u, c in counters.items()},
            await self._reports(ids),
            report_type=report_type,
        )

    async def case_stats(self, unit_id: str, period: str) -> CaseStats:
        start, _ = _period(period)
        await self.view.fresh()
        self._unit(unit_id)
        tree = self.view.tree
        counters = await self._counters("case_counters", tree.subtree(unit_id), start.year)
        return case_stats(
            tree,
            unit_id,
            period,
            {u: UnitCaseCounters.from_document(c) for u, c in counters.items()},
        )

    def _report_types(self) -> set[str]:
        return {s.report_type for p in self.view.plans.values() for s in p.report_schedules}

    async def _reports(self, ids: Iterable[str]) -> list[ReportState]:
        docs = await self.store.load("reports", ids)
        return [state_of(ReportState, d) for d in docs.values()]

    async def _counters(
        self, name: str, units: Iterable[str], year: int
    ) -> dict[str, dict[str, Any]]:
        """unit_id → the unit's counters of `year`, as the domain reads them."""
        docs = await self.store.load(name, (counters_doc_id(u, year) for u in units))
        return {d["unit_id"]: counters_body(d) for d in docs.values()}

    # ---- exports -------------------------------------------------------------------------------

    async def compliance_xlsx(self, plan_id: str, unit_id: str, as_of: datetime) -> bytes:
        result = await self.compliance(plan_id, unit_id, as_of, with_units=True)
        return await asyncio.to_thread(compliance_workbook, result)

    async def indicators_xlsx(
        self, unit_id: str, period: str, report_type: str | None = None
    ) -> bytes:
        result = await self.indicators(unit_id, period, report_type)
        return await asyncio.to_thread(indicators_workbook, result)

    async def thematic_report(self, plan_id: str, unit_id: str, as_of: datetime) -> bytes:
        """The unit's report on the plan as of `as_of`: targets, the reporting periods due by
        then, and the indicators of the plan year."""
        _aware(as_of)
        await self.view.fresh()
        plan, unit, tree = self._plan(plan_id), self._unit(unit_id), self.view.tree
        result = await self.compliance(plan_id, unit_id, as_of)
        units = tree.subtree(unit_id)
        ids = [
            report_doc_id(u, schedule.report_type, p.period)
            for schedule in plan.report_schedules
            for p in schedule.periods
            if all(due <= as_of for due in p.due_at.values())
            for u in units
            if tree.units[u].level in schedule.levels
        ]
        rates = all_reporting_rates(plan, tree, unit_id, await self._reports(ids), due_by=as_of)
        totals = await self.indicators(unit_id, str(plan.year))
        heading = heading_for(unit, plan, as_of.astimezone(LOCAL_TZ).date())
        return await asyncio.to_thread(thematic_report_docx, heading, result, rates, totals)


def _aware(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise BadInput("as_of phải có múi giờ, ví dụ 2021-07-01T00:00:00+07:00 (giờ Việt Nam).")


def _period(period: str) -> tuple[date, date]:
    try:
        return period_bounds(period)
    except BadPeriod as exc:
        raise BadInput(
            f"Kỳ '{period}' không hợp lệ: dùng năm (2021), nửa năm (2021-H1), quý (2021-Q3) "
            "hoặc tháng (2021-03)."
        ) from exc

"""The answers and the exports, read from the documents the consumer keeps.

Every answer is a few reads by `_id`: the unit's node (name, ancestors, children), the plan,
and one part of the unit's own unit-year document — whatever the size of the subtree below it.
Every request reads its documents; no answer is kept in the process. What is kept is the parsed
form of the text read (`parsed.ParsedTexts`), reused only while the document holds the same
text, so an answer always follows the documents as stored.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import cached_property
from typing import IO, Any, Protocol, TypeVar

from pydantic import BaseModel, Field

from lhpn_shared.clock import LOCAL_TZ, Clock
from lhpn_shared.contracts.plans import Plan
from lhpn_shared.contracts.units import Unit, UnitTree
from lhpn_shared.mongo import Doc
from lhpn_shared.periods import BadPeriod, period_bounds

from .domain.case_stats import CaseStats, case_stats
from .domain.compliance import DEFAULT_LIST_LIMIT, ComplianceResult, compliance
from .domain.indicators import IndicatorsResult, indicators
from .domain.rates import ReportingRates, all_reporting_rates, reporting_rates
from .domain.rollup import PlanPart, Roster, empty_part, is_roster, plan_part_name, roster_name
from .domain.scope import ChildRef
from .errors import BadInput, NotFound
from .exports.docx import ReportHeading, heading_for, thematic_report_docx
from .exports.xlsx import compliance_workbook, indicators_workbook
from .parsed import ParsedTexts
from .repository import AggregationStore, part_field, unit_year_id, unit_year_parts

T = TypeVar("T")

CHUNK = 256 * 1024
"""Bytes per piece of a streamed export."""


@dataclass(frozen=True)
class Node:
    unit: Unit
    ancestors: list[str]
    children: list[ChildRef]

    @cached_property
    def chain(self) -> list[Unit]:
        """The unit and its ancestors: enough to tell whether it lies within a unit's subtree."""
        ids = [self.unit.unit_id, *self.ancestors]
        chain = [
            Unit.model_construct(
                unit_id=uid,
                name=uid,
                kind="",
                level=self.unit.level,
                parent_id=ids[i + 1] if i + 1 < len(ids) else None,
            )
            for i, uid in enumerate(ids)
        ]
        return chain

    def access_tree(self) -> UnitTree:
        return UnitTree(self.chain)

    @classmethod
    def parse(cls, text: str) -> Node:
        raw = json.loads(text)
        return cls(
            unit=Unit.model_validate(raw["unit"]),
            ancestors=list(raw["ancestors"]),
            children=[ChildRef.model_validate(c) for c in raw["children"]],
        )


class HeadingChoices(BaseModel):
    """What the caller may set in the thematic report's heading (defaults: `heading_for`)."""

    number: str | None = Field(default=None, max_length=60, description="shown after 'Số: '")
    dated_on: date | None = Field(default=None, description="default: the as-of date")
    signer_name: str | None = Field(default=None, max_length=120)
    signer_title: str | None = Field(default=None, max_length=120)

    def apply(self, heading: ReportHeading) -> ReportHeading:
        changes = {k: v for k, v in self.model_dump().items() if v is not None}
        return heading.model_copy(update=changes)


class Reads(Protocol):
    """Where the answers read from: one store, or the sum of the partitions' stores
    (`partitioned.PartitionedReads`, `AGGREGATION_PARTITIONS` > 1)."""

    async def get(
        self, name: str, doc_id: str, parts: Sequence[str] | None = None
    ) -> dict[str, Any] | None: ...

    async def read_list(self, key: str) -> list[object]: ...

    async def all_docs(self, name: str) -> list[dict[str, Any]]: ...


class Queries:
    def __init__(self, store: AggregationStore, clock: Clock, reads: Reads | None = None) -> None:
        self.store = store
        self.clock = clock
        self.reads: Reads = reads if reads is not None else store
        self.parsed = ParsedTexts()

    # ---- what the answers are read from -------------------------------------------------------

    async def node(self, unit_id: str) -> Node:
        doc = await self.reads.get("nodes", unit_id)
        if doc is None:
            raise NotFound(f"Không có đơn vị mã '{unit_id}'.")
        return self.parsed.get(("nodes", unit_id), doc["json"], Node.parse)

    async def node_and(self, unit_id: str, other: Awaitable[T]) -> tuple[Node, T]:
        """The unit's node and another read, at the same time; an unknown unit is said first
        (before an unknown plan or period), as when the node was read on its own first."""
        node, found = await asyncio.gather(self.node(unit_id), other, return_exceptions=True)
        for outcome in (node, found):
            if isinstance(outcome, BaseException):
                raise outcome
        assert isinstance(node, Node)
        return node, found  # type: ignore[return-value]

    async def roots(self) -> list[str]:
        return [str(r) for r in await self.reads.read_list("roots")]

    async def access_tree(self, unit_ids: Sequence[str]) -> UnitTree:
        """The named units and their ancestors, from the node documents the answers read (one
        each; an unknown unit is left out): what the access guard checks a caller against."""
        units: dict[str, Unit] = {}
        for unit_id in dict.fromkeys(unit_ids):
            try:
                node = await self.node(unit_id)
            except NotFound:
                continue
            units.update((u.unit_id, u) for u in node.chain)
        return UnitTree(units.values())

    async def plan(self, plan_id: str) -> Plan:
        doc = await self.reads.get("plans", plan_id)
        if doc is None:
            raise NotFound(f"Không có kế hoạch '{plan_id}'.")
        return self._plan(doc)

    async def plans(self) -> list[Plan]:
        return [self._plan(d) for d in await self.reads.all_docs("plans")]

    def _plan(self, doc: Doc) -> Plan:
        return self.parsed.get(("plans", doc["_id"]), doc["json"], Plan.model_validate_json)

    async def parts(self, unit_id: str, year: int, names: Sequence[str]) -> dict[str, Any]:
        """The named parts of a unit-year document, parsed (empty where there is none). The
        parsed parts may be shared with other requests: read them, never change them."""
        doc_id = unit_year_id(unit_id, year)
        doc = await self.reads.get("unit_years", doc_id, [part_field(n) for n in names])
        stored = unit_year_parts(doc) if doc else {}
        out: dict[str, Any] = {}
        for name in names:
            text = stored.get(name)
            out[name] = (
                empty_part(name)
                if text is None
                else self.parsed.get(("unit_years", doc_id, name), text, _parser(name))
            )
        return out

    async def part(self, unit_id: str, year: int, name: str) -> Any:
        """One part of a unit-year document, parsed (empty when there is none)."""
        return (await self.parts(unit_id, year, [name]))[name]

    async def plan_part(self, plan: Plan, unit_id: str, *, roster: bool = True) -> PlanPart:
        """The plan's counts in the unit's document, and its roster when lists are wanted."""
        counts, members = plan_part_name(plan.plan_id), roster_name(plan.plan_id)
        found = await self.parts(unit_id, plan.year, [counts, members] if roster else [counts])
        return PlanPart(found[counts], found.get(members))

    async def warm(self) -> None:
        """At start-up, answer once what the root's first requests ask (the compliance with
        the latest plan, its case statistics): its documents are parsed and the code that
        answers has run once, so the first request after a restart costs what the hundredth
        does. Nothing of an answer is kept: only the parsed texts (`parsed`), which every
        request checks against the documents it reads."""
        plans = sorted(await self.plans(), key=lambda p: (-p.year, p.plan_id))
        if not plans:
            return
        latest = plans[0]
        periods = [
            (s.report_type, p.period) for s in latest.report_schedules for p in s.periods[:1]
        ]
        for root in await self.roots():
            answers: list[BaseModel] = [
                await self.compliance(latest.plan_id, root, self.clock.now()),
                *await self.reporting_rates_of(periods, root, latest.plan_id),
                await self.case_stats(root, str(latest.year)),
            ]
            for answer in answers:
                answer.model_dump_json()

    # ---- answers --------------------------------------------------------------------------------

    async def compliance(
        self,
        plan_id: str,
        unit_id: str,
        as_of: datetime,
        *,
        list_limit: int = DEFAULT_LIST_LIMIT,
        with_units: bool = False,
    ) -> ComplianceResult:
        _aware(as_of)
        node, plan = await self.node_and(unit_id, self.plan(plan_id))
        part = await self.plan_part(plan, unit_id, roster=bool(list_limit) or with_units)
        return compliance(
            plan,
            node.unit,
            node.children,
            part,
            as_of,
            list_limit=list_limit,
            with_units=with_units,
        )

    async def reporting_rates(
        self,
        report_type: str,
        period: str,
        unit_id: str,
        plan_id: str | None = None,
        *,
        list_limit: int = DEFAULT_LIST_LIMIT,
    ) -> ReportingRates:
        [rates] = await self.reporting_rates_of(
            [(report_type, period)], unit_id, plan_id, list_limit=list_limit
        )
        return rates

    async def reporting_rates_of(
        self,
        periods: Sequence[tuple[str, str]],
        unit_id: str,
        plan_id: str | None = None,
        *,
        list_limit: int = DEFAULT_LIST_LIMIT,
    ) -> list[ReportingRates]:
        """The rates of several (report type, period), in the order asked: the unit, the plans
        and each plan's part are read once for all of them."""
        if plan_id:
            node, plan = await self.node_and(unit_id, self.plan(plan_id))
            plans = [plan]
        else:
            node, plans = await self.node_and(unit_id, self.plans())
        chosen = [_schedule_plan(plans, t, p, plan_id) for t, p in periods]
        found: dict[str, PlanPart] = {}
        for plan in chosen:
            if plan.plan_id not in found:
                found[plan.plan_id] = await self.plan_part(plan, unit_id, roster=bool(list_limit))
        return [
            reporting_rates(
                plan,
                node.unit,
                node.children,
                found[plan.plan_id],
                report_type,
                period,
                list_limit=list_limit,
            )
            for plan, (report_type, period) in zip(chosen, periods, strict=True)
        ]

    async def indicators(
        self, unit_id: str, period: str, report_type: str | None = None
    ) -> IndicatorsResult:
        start = await self._start(unit_id, period)
        node, found = await self.node_and(
            unit_id, self.parts(unit_id, start.year, ["activities", "declared"])
        )
        return indicators(
            node.unit,
            period,
            found["activities"],
            found["declared"],
            report_type=report_type,
        )

    async def case_stats(self, unit_id: str, period: str) -> CaseStats:
        start = await self._start(unit_id, period)
        node, cases = await self.node_and(unit_id, self.part(unit_id, start.year, "cases"))
        return case_stats(node.unit, node.children, period, cases, self.clock.now())

    async def _start(self, unit_id: str, period: str) -> date:
        """The first day of a period; a bad period is refused after an unknown unit."""
        try:
            start, _ = _period(period)
        except BadInput:
            await self.node(unit_id)
            raise
        return start

    # ---- exports ---------------------------------------------------------------------------------

    async def compliance_xlsx(
        self, plan_id: str, unit_id: str, as_of: datetime
    ) -> AsyncIterator[bytes]:
        """The workbook of every unit in scope, written to a temporary file and streamed."""
        result = await self.compliance(plan_id, unit_id, as_of, list_limit=0, with_units=True)
        return await _streamed(lambda out: compliance_workbook(result, out))

    async def indicators_xlsx(
        self, unit_id: str, period: str, report_type: str | None = None
    ) -> AsyncIterator[bytes]:
        result = await self.indicators(unit_id, period, report_type)
        return await _streamed(lambda out: indicators_workbook(result, out))

    async def thematic_report(
        self,
        plan_id: str,
        unit_id: str,
        as_of: datetime,
        choices: HeadingChoices | None = None,
    ) -> bytes:
        """The unit's report on the plan as of `as_of`: targets (with the units behind counted
        per child unit), the reporting periods due by then, and the indicators of the plan
        year."""
        _aware(as_of)
        node, plan = await self.node_and(unit_id, self.plan(plan_id))
        part = await self.plan_part(plan, unit_id)
        result = compliance(plan, node.unit, node.children, part, as_of, list_limit=1)
        rates = all_reporting_rates(plan, node.unit, node.children, part, due_by=as_of)
        totals = await self.indicators(unit_id, str(plan.year))
        heading = heading_for(node.unit, plan, as_of.astimezone(LOCAL_TZ).date())
        if choices is not None:
            heading = choices.apply(heading)
        return await asyncio.to_thread(thematic_report_docx, heading, result, rates, totals)


def _parser(name: str) -> Callable[[str], Any]:
    """How a stored part is read: a roster is text, every other part JSON."""
    return Roster if is_roster(name) else json.loads


def _schedule_plan(plans: list[Plan], report_type: str, period: str, plan_id: str | None) -> Plan:
    for plan in sorted(plans, key=lambda p: (-p.year, p.plan_id)):
        schedule = plan.schedule(report_type)
        if schedule is not None and schedule.period(period) is not None:
            return plan
    where = f"kế hoạch '{plan_id}'" if plan_id else "các kế hoạch đã ban hành"
    raise NotFound(f"Không có kỳ báo cáo '{report_type}' kỳ '{period}' trong {where}.")


async def _streamed(write: Callable[[IO[bytes]], None]) -> AsyncIterator[bytes]:
    """Write a file in a worker thread to a temporary file, then hand it out piece by piece
    (the file is gone once read, or once the response is abandoned)."""
    out = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the generator
    try:
        await asyncio.to_thread(write, out)
    except BaseException:
        out.close()
        raise

    async def pieces() -> AsyncIterator[bytes]:
        try:
            await asyncio.to_thread(out.seek, 0)
            while piece := await asyncio.to_thread(out.read, CHUNK):
                yield piece
        finally:
            out.close()

    return pieces()


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

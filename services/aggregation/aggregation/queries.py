"""The answers and the exports, read from the documents the consumer keeps.

Every answer is a few reads by `_id`: the unit's node (name, ancestors, children), the plan,
and one part of the unit's own unit-year document — whatever the size of the subtree below it.
Nothing is cached in the process: the first request after a restart costs what the hundredth
does.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import IO, Any, Protocol

from pydantic import BaseModel, Field

from lhpn_shared.clock import LOCAL_TZ, Clock
from lhpn_shared.contracts.plans import Plan
from lhpn_shared.contracts.units import Unit, UnitTree
from lhpn_shared.periods import BadPeriod, period_bounds

from .batch import state_of
from .domain.case_stats import CaseStats, case_stats
from .domain.compliance import DEFAULT_LIST_LIMIT, ComplianceResult, compliance
from .domain.indicators import IndicatorsResult, indicators
from .domain.rates import ReportingRates, all_reporting_rates, reporting_rates
from .domain.rollup import PlanPart, UnitYear, plan_part_name, roster_name
from .domain.scope import ChildRef
from .errors import BadInput, NotFound
from .exports.docx import ReportHeading, heading_for, thematic_report_docx
from .exports.xlsx import compliance_workbook, indicators_workbook
from .repository import AggregationStore, part_field, unit_year_id, unit_year_parts

CHUNK = 256 * 1024
"""Bytes per piece of a streamed export."""


@dataclass(frozen=True)
class Node:
    unit: Unit
    ancestors: list[str]
    children: list[ChildRef]

    def access_tree(self) -> UnitTree:
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
        return UnitTree(chain)


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

    # ---- what the answers are read from -------------------------------------------------------

    async def node(self, unit_id: str) -> Node:
        doc = await self.reads.get("nodes", unit_id)
        if doc is None:
            raise NotFound(f"Không có đơn vị mã '{unit_id}'.")
        raw = json.loads(doc["json"])
        return Node(
            unit=Unit.model_validate(raw["unit"]),
            ancestors=list(raw["ancestors"]),
            children=[ChildRef.model_validate(c) for c in raw["children"]],
        )

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
            units.update(node.access_tree().units)
        return UnitTree(units.values())

    async def plan(self, plan_id: str) -> Plan:
        doc = await self.reads.get("plans", plan_id)
        if doc is None:
            raise NotFound(f"Không có kế hoạch '{plan_id}'.")
        return state_of(Plan, doc)

    async def plans(self) -> list[Plan]:
        return [state_of(Plan, d) for d in await self.reads.all_docs("plans")]

    async def part(self, unit_id: str, year: int, name: str) -> Any:
        """One part of a unit-year document, parsed (empty when there is none)."""
        doc = await self.reads.get("unit_years", unit_year_id(unit_id, year), [part_field(name)])
        found = UnitYear(unit_id, year, {}, set(), unit_year_parts(doc) if doc else {})
        return found.part(name)

    async def plan_part(self, plan: Plan, unit_id: str, *, roster: bool = True) -> PlanPart:
        """The plan's counts in the unit's document, and its roster when lists are wanted."""
        names = [plan_part_name(plan.plan_id)] + ([roster_name(plan.plan_id)] if roster else [])
        doc = await self.reads.get(
            "unit_years", unit_year_id(unit_id, plan.year), [part_field(n) for n in names]
        )
        found = UnitYear(unit_id, plan.year, {}, set(), unit_year_parts(doc) if doc else {})
        return found.plan(plan.plan_id)

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
        plan, node = await asyncio.gather(self.plan(plan_id), self.node(unit_id))
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
        plans = [await self.plan(plan_id)] if plan_id else await self.plans()
        node = await self.node(unit_id)
        plan = _schedule_plan(plans, report_type, period, plan_id)
        part = await self.plan_part(plan, unit_id, roster=bool(list_limit))
        return reporting_rates(
            plan, node.unit, node.children, part, report_type, period, list_limit=list_limit
        )

    async def indicators(
        self, unit_id: str, period: str, report_type: str | None = None
    ) -> IndicatorsResult:
        start, _ = _period(period)
        node = await self.node(unit_id)
        doc = await self.reads.get(
            "unit_years", unit_year_id(unit_id, start.year), ["activities", "declared"]
        )
        found = UnitYear(unit_id, start.year, {}, set(), unit_year_parts(doc) if doc else {})
        return indicators(
            node.unit,
            period,
            found.part("activities"),
            found.part("declared"),
            report_type=report_type,
        )

    async def case_stats(self, unit_id: str, period: str) -> CaseStats:
        start, _ = _period(period)
        node = await self.node(unit_id)
        cases = await self.part(unit_id, start.year, "cases")
        return case_stats(node.unit, node.children, period, cases, self.clock.now())

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
        plan, node = await asyncio.gather(self.plan(plan_id), self.node(unit_id))
        part = await self.plan_part(plan, unit_id)
        result = compliance(plan, node.unit, node.children, part, as_of, list_limit=1)
        rates = all_reporting_rates(plan, node.unit, node.children, part, due_by=as_of)
        totals = await self.indicators(unit_id, str(plan.year))
        heading = heading_for(node.unit, plan, as_of.astimezone(LOCAL_TZ).date())
        if choices is not None:
            heading = choices.apply(heading)
        return await asyncio.to_thread(thematic_report_docx, heading, result, rates, totals)


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

"""A batch's effect on the rollups, in the pure core: which unit-year documents and reports it
needs (`Projection.needs`), then, given them, the documents it changes (`Projection.run`). No
I/O here: the service loads and writes.

The rollups of a unit are the sums of the contributions of every unit under it (`rollup`), so
a batch only ever adds and removes contributions, along the chains of ancestors:
1. units that moved (a new unit, a new parent) take their whole subtree's rollups from their
   old chain to their new one (every year);
2. activity and case deltas, and report resubmissions, are added along the unit's chain;
3. the standing of every unit whose entry may have changed (its days, its predecessors' days,
   the unit itself, its lineage, a report) is computed again and replaces the old one along its
   chain; a plan that is new or whose targets or schedules changed is built from scratch for
   its year.
The result depends only on the states, not on the order events came in: replaying, repeating
or reordering them gives the same documents.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lhpn_shared.contracts.plans import Plan
from lhpn_shared.contracts.units import Unit, UnitTree

from .domain.facts import ActivityDelta, ReportState
from .domain.rollup import (
    SELF,
    Entry,
    PlanPart,
    PlanShape,
    UnitYear,
    add_into,
    difference,
    is_roster,
    plan_part_name,
)
from .domain.scope import ChildRef
from .domain.standing import entry_for, report_status, report_statuses
from .domain.tree import Lineage, chain, covered, day_index, links_of, plan_roots, tree_order
from .repository import report_doc_id, unit_year_id


@dataclass
class TreeState:
    """The unit tree as the writer knows it: the units, their lineage and listing order."""

    tree: UnitTree
    lineage: Lineage
    order: dict[str, int]

    @classmethod
    def of(cls, units: Iterable[Unit]) -> TreeState:
        units = list(units)
        tree = UnitTree(units)
        return cls(tree, Lineage.of(units), tree_order(tree))

    def with_changes(self, changes: Mapping[str, Unit]) -> TreeState:
        if not changes:
            return self
        return TreeState.of({**self.tree.units, **changes}.values())


def period_year(period: str) -> int | None:
    head = period[:4]
    return int(head) if head.isdigit() else None


def reports_key(report: ReportState) -> str:
    return report_doc_id(report.unit_id, report.report_type, report.period)


@dataclass
class Needs:
    docs: set[str] = field(default_factory=set)
    """unit-year document ids"""
    reports: set[str] = field(default_factory=set)
    """report state ids"""
    whole_years: set[int] = field(default_factory=set)
    """years whose every unit-year document is needed (a plan built from scratch)"""
    all_reports: bool = False
    """every stored report state is needed (a plan built from scratch)"""


class Docs:
    """The unit-year documents a projection works on: those loaded (or known to be absent),
    created on first use. Asking for one that was not loaded is a bug in `needs`."""

    def __init__(self, loaded: Mapping[str, UnitYear | None], whole_years: Iterable[int] = ()):
        self.docs: dict[str, UnitYear] = {i: d for i, d in loaded.items() if d is not None}
        self.absent = {i for i, d in loaded.items() if d is None}
        self.whole_years = set(whole_years)

    def get(self, unit_id: str, year: int) -> UnitYear:
        doc_id = unit_year_id(unit_id, year)
        doc = self.docs.get(doc_id)
        if doc is None:
            if doc_id not in self.absent and year not in self.whole_years:
                raise KeyError(f"unit-year document {doc_id} was not loaded")
            doc = self.docs[doc_id] = UnitYear.new(unit_id, year)
        return doc

    def peek(self, unit_id: str, year: int) -> UnitYear | None:
        doc_id = unit_year_id(unit_id, year)
        loaded = doc_id in self.docs or doc_id in self.absent or year in self.whole_years
        if not loaded:
            raise KeyError(f"unit-year document {doc_id} was not loaded")
        return self.docs.get(doc_id)

    def of_year(self, year: int) -> list[UnitYear]:
        return [d for d in self.docs.values() if d.year == year]

    def changed(self) -> list[UnitYear]:
        return [d for d in self.docs.values() if d.dirty]


class Projection:
    """One batch's effect on the rollups (see the module docstring)."""

    def __init__(
        self,
        before: TreeState,
        units: Mapping[str, tuple[Unit | None, Unit]],
        plans: Mapping[str, Plan],
        plan_changes: Mapping[str, tuple[Plan | None, Plan]],
        activity_deltas: list[ActivityDelta],
        case_deltas: list[Any],
        report_changes: Mapping[str, tuple[ReportState | None, ReportState]],
        years: Iterable[int],
    ) -> None:
        self.before = before
        self.unit_changes = units
        self.after = before.with_changes({i: new for i, (_, new) in units.items()})
        self.plans = plans
        """every plan after the batch"""
        self.plan_changes = plan_changes
        self.activity_deltas = activity_deltas
        self.case_deltas = case_deltas
        self.report_changes = report_changes
        self.final_reports = {i: new for i, (_, new) in report_changes.items()}
        self.years = set(years) | {d.year for d in activity_deltas} | {d.year for d in case_deltas}
        for _, new in report_changes.values():
            if (year := period_year(new.period)) is not None:
                self.years.add(year)
        self.years |= {p.year for p in plans.values()}
        self.moved = self._moved()
        self._roots: dict[str, frozenset[str]] = {}
        self.rebuilt = self._rebuilt()
        self._chains: dict[str, list[str]] = {}
        self._standings: dict[str, tuple[set[str], set[str], dict[str, list[str]]]] = {}

    def chain(self, unit_id: str) -> list[str]:
        """The unit's chain in the tree after the batch (`tree.chain`), computed once."""
        found = self._chains.get(unit_id)
        if found is None:
            found = self._chains[unit_id] = chain(self.after.tree, unit_id)
        return found

    # ---- what changes ----------------------------------------------------------------------

    def _moved(self) -> list[str]:
        """Units whose place in the tree changed: new ones, and new parents."""
        out = []
        for unit_id, (_, new) in sorted(self.unit_changes.items()):
            old = self.before.tree.get(unit_id)
            if old is None or old.parent_id != new.parent_id:
                out.append(unit_id)
        return out

    def _rebuilt(self) -> dict[str, set[int]]:
        """plan_id → the years whose plan part is built from scratch: new plans, new years,
        issuers, targets or schedules, and plans whose issuer now continues other units (or no
        longer does: the units it covers changed)."""
        out: dict[str, set[int]] = {}
        for plan_id, (old, new) in self.plan_changes.items():
            if old is None or _shape_of(old) != _shape_of(new):
                out[plan_id] = {new.year} | ({old.year} if old is not None else set())
        if self.unit_changes:
            for plan in self.plans.values():
                if plan.plan_id not in out and self.roots(plan, self.before) != self.roots(plan):
                    out[plan.plan_id] = {plan.year}
        return out

    def roots(self, plan: Plan, state: TreeState | None = None) -> frozenset[str]:
        """The units whose subtrees the plan covers (`tree.plan_roots`), after the batch."""
        state = state or self.after
        return plan_roots(plan.issuing_unit_id, state.lineage)

    def covers(self, plan: Plan, unit_id: str) -> bool:
        key = plan.plan_id
        if key not in self._roots:
            self._roots[key] = self.roots(plan)
        return covered(self.after.tree, self._roots[key], unit_id)

    def _restandings(self, plan: Plan) -> tuple[set[str], set[str], dict[str, list[str]]]:
        """(units whose targets are computed again, units whose reports are read again,
        unit → report ids resubmitted for this plan) for a plan not built from scratch."""
        if plan.plan_id not in self._standings:
            self._standings[plan.plan_id] = self._find_restandings(plan)
        return self._standings[plan.plan_id]

    def _find_restandings(self, plan: Plan) -> tuple[set[str], set[str], dict[str, list[str]]]:
        year = plan.year
        days = {d.unit_id for d in self.activity_deltas if d.year == year}
        units = set(self.unit_changes)
        lineage_changed = {
            i for i, (old, new) in self.unit_changes.items() if links_of(old) != links_of(new)
        }
        around = (
            lineage_changed
            | self.before.lineage.neighbours(lineage_changed)
            | self.after.lineage.neighbours(lineage_changed)
        )
        seeds = days | units | around
        moved = {u for m in self.moved for u in self.after.tree.subtree(m)}
        seeds |= moved  # under another unit now: covered by the plan or not any more
        targets = set(seeds)
        for unit_id in seeds:
            targets |= self.after.lineage.credited_to(unit_id, year)
            targets |= self.before.lineage.credited_to(unit_id, year)
        full_reports = moved | {
            i
            for i, (old, new) in self.unit_changes.items()
            if old is None
            or (old.level, old.valid_from, old.valid_to)
            != (new.level, new.valid_from, new.valid_to)
        }
        shape = PlanShape.of(plan)
        resubmitted: dict[str, list[str]] = {}
        for report_id, (_, new) in self.report_changes.items():
            if shape.period_index(new.report_type, new.period) is not None:
                resubmitted.setdefault(new.unit_id, []).append(report_id)
        known = self.after.tree.units
        return (
            {i for i in targets if i in known},
            {i for i in full_reports if i in known},
            {i: ids for i, ids in resubmitted.items() if i in known},
        )

    # ---- what it needs -----------------------------------------------------------------------

    def needs(self) -> Needs:
        needs = Needs()
        for d in self.activity_deltas:
            needs.docs.update(unit_year_id(u, d.year) for u in self.chain(d.unit_id))
        for c in self.case_deltas:
            needs.docs.update(unit_year_id(u, c.year) for u in self.chain(c.unit_id))
        for old, new in self.report_changes.values():
            for report in (old, new):
                if report is not None and (year := period_year(report.period)) is not None:
                    needs.docs.update(unit_year_id(u, year) for u in self.chain(report.unit_id))
        reach = self._move_reach()
        needs.docs.update(unit_year_id(u, y) for u in reach for y in self.years)
        for years in self.rebuilt.values():
            needs.whole_years |= years
            needs.all_reports = True
        for plan in self.plans.values():
            if plan.plan_id in self.rebuilt:
                continue
            targets, full, resubmitted = self._restandings(plan)
            year = plan.year
            shape = PlanShape.of(plan)
            for unit_id in targets | full | set(resubmitted):
                needs.docs.update(unit_year_id(u, year) for u in self.chain(unit_id))
            for unit_id in targets:
                sources = self.after.lineage.credit_sources(unit_id, year)
                needs.docs.update(unit_year_id(u, year) for u in sources)
            for unit_id in full:
                needs.reports |= {
                    report_doc_id(unit_id, s.report_type, p.period) for s, p in shape.periods
                }
        needs.reports -= set(self.final_reports)
        return needs

    def _move_reach(self) -> set[str]:
        """The moved units, and every unit their old or new chain may pass through."""
        parents = [self.before.tree, self.after.tree]
        out: set[str] = set()
        frontier = list(self.moved)
        while frontier:
            unit_id = frontier.pop()
            if unit_id in out:
                continue
            out.add(unit_id)
            for tree in parents:
                unit = tree.get(unit_id)
                if unit is not None and unit.parent_id is not None:
                    frontier.append(unit.parent_id)
        return out

    # ---- the run -------------------------------------------------------------------------------

    def run(self, docs: Docs, reports: Mapping[str, ReportState]) -> None:
        """Apply the batch to `docs` (loaded as `needs` said); `reports` are the stored report
        states `needs` asked for (the batch's own changes are taken from the batch)."""
        all_reports = {**reports, **self.final_reports}
        self._move_all(docs)
        for d in self.activity_deltas:
            _own_days(docs.get(d.unit_id, d.year), d)
            totals = d.totals()
            for unit_id in self.chain(d.unit_id):
                add_into(docs.get(unit_id, d.year).change("activities"), totals)
        for c in self.case_deltas:
            counts = c.counts()
            path = self.chain(c.unit_id)
            for index, unit_id in enumerate(path):
                cases = docs.get(unit_id, c.year).change("cases")
                add_into(cases["s"], counts)
                if index:
                    _add_child(cases["c"], path[index - 1], counts, 1)
        for old, new in self.report_changes.values():
            for report, sign in ((old, -1), (new, 1)):
                year = period_year(report.period) if report is not None else None
                if report is None or year is None:
                    continue
                declared = {
                    report.report_type: {
                        report.period: {
                            "n": 1,
                            "c": report.indicators,
                            "k": dict.fromkeys(report.indicators, 1),  # declared, even as 0
                        }
                    }
                }
                for unit_id in self.chain(report.unit_id):
                    add_into(docs.get(unit_id, year).change("declared"), declared, sign)
        for plan in self.plans.values():
            if plan.plan_id not in self.rebuilt:
                self._restand(docs, plan, all_reports)
        for plan_id, years in self.rebuilt.items():
            for year in years:
                plan = self.plans[plan_id]
                self._rebuild(docs, plan if plan.year == year else None, plan_id, year, all_reports)
        for doc in docs.changed():
            for name in doc.dirty:
                if is_roster(name):
                    doc.parts[name].finish(self.after.order)

    def _move_all(self, docs: Docs) -> None:
        if not self.moved:
            return
        parent = {i: u.parent_id for i, u in self.before.tree.units.items()}
        known = set(parent)

        def above(unit_id: str) -> list[str]:
            out: list[str] = []
            seen = {unit_id}
            node = unit_id
            while node in known and parent[node] is not None:
                up = parent[node]
                assert up is not None
                if up in seen:
                    break
                out.append(up)
                seen.add(up)
                node = up
            return out

        for unit_id in self.moved:
            old = above(unit_id) if unit_id in known else []
            parent[unit_id] = self.after.tree.units[unit_id].parent_id
            known.add(unit_id)
            new = above(unit_id)
            if old == new:
                continue
            for year in sorted(self.years):
                moving = docs.peek(unit_id, year)
                if moving is None:
                    continue
                _carry(docs, moving, [unit_id, *old], year, -1)
                _carry(docs, moving, [unit_id, *new], year, 1)

    def _restand(self, docs: Docs, plan: Plan, reports: Mapping[str, ReportState]) -> None:
        targets, full, resubmitted = self._restandings(plan)
        shape = PlanShape.of(plan)
        year = plan.year
        after = self.after.tree
        for unit_id in sorted(targets | full | set(resubmitted)):
            unit = after.units[unit_id]
            own_doc = docs.get(unit_id, year)
            old = own_doc.plan(plan.plan_id).entry(unit_id)
            if not self.covers(plan, unit_id):
                if old is not None:  # no longer under the plan's province
                    self._replace(docs, plan, shape, unit_id, old, None)
                continue
            if unit_id in full or old is None:
                statuses = report_statuses(unit, shape, _reports_of(unit_id, shape, reports))
            else:
                statuses = _restated(
                    old.reports, unit, shape, resubmitted.get(unit_id, []), reports
                )
            if unit_id in targets or old is None:
                new = self._entry(docs, unit, shape, statuses)
            else:
                new = Entry(old.name, old.level, old.parent_id, old.valid, old.targets, statuses)
            if new != old:
                self._replace(docs, plan, shape, unit_id, old, new)

    def _replace(
        self,
        docs: Docs,
        plan: Plan,
        shape: PlanShape,
        unit_id: str,
        old: Entry | None,
        new: Entry | None,
    ) -> None:
        """A unit's entry replaced (or removed) in the plan part of every unit of its chain."""
        change = difference(
            new.contribution(shape) if new is not None else {},
            old.contribution(shape) if old is not None else {},
        )
        path = self.chain(unit_id)
        for index, ancestor in enumerate(path):
            branch = SELF if index == 0 else path[index - 1]
            docs.get(ancestor, plan.year).change_plan(plan.plan_id).set_member(
                branch, unit_id, new, shape, change
            )

    def _entry(self, docs: Docs, unit: Unit, shape: PlanShape, statuses: str) -> Entry:
        year = shape.year
        own = docs.get(unit.unit_id, year).own_days()
        sources = []
        for source, last in sorted(self.after.lineage.credit_sources(unit.unit_id, year).items()):
            found = docs.peek(source, year)
            if found is not None:
                sources.append((found.own_days(), last))
        return entry_for(unit, shape, own, sources, statuses)

    def _rebuild(
        self,
        docs: Docs,
        plan: Plan | None,
        plan_id: str,
        year: int,
        reports: Mapping[str, ReportState],
    ) -> None:
        """The plan's part of every unit-year document of `year`, from scratch (`plan` None:
        the plan moved to another year, its parts here are removed)."""
        fresh: dict[str, PlanPart] = {}
        if plan is not None:
            shape = PlanShape.of(plan)
            after = self.after.tree
            for unit_id in sorted(after.units):
                if not self.covers(plan, unit_id):
                    continue
                unit = after.units[unit_id]
                statuses = report_statuses(unit, shape, _reports_of(unit_id, shape, reports))
                entry = self._entry(docs, unit, shape, statuses)
                contribution = entry.contribution(shape)
                path = self.chain(unit_id)
                for index, ancestor in enumerate(path):
                    part = fresh.get(ancestor)
                    if part is None:
                        part = fresh[ancestor] = PlanPart()
                    branch = SELF if index == 0 else path[index - 1]
                    part.add_member(branch, unit_id, entry, contribution)
        for doc in docs.of_year(year):
            if doc.unit_id not in fresh and doc.has_part(plan_part_name(plan_id)):
                doc.set_plan(plan_id, PlanPart())
        for unit_id, part in fresh.items():
            docs.get(unit_id, year).set_plan(plan_id, part)

    # ---- the query side of the tree --------------------------------------------------------

    def node_ids(self) -> set[str]:
        """Known units whose node (ancestors, children) the batch changed."""
        out: set[str] = set()
        for unit_id, (old, new) in self.unit_changes.items():
            out.add(unit_id)
            for unit in (old, new):
                if unit is not None and unit.parent_id is not None:
                    out.add(unit.parent_id)
        for unit_id in self.moved:
            out.update(self.after.tree.subtree(unit_id))
        return {i for i in out if i in self.after.tree}


def node(tree: UnitTree, unit_id: str) -> dict[str, Any]:
    """What the answers need of a unit besides its rollups: the unit, its ancestors (for
    access checks) and its children (to name them)."""
    unit = tree.units[unit_id]
    return {
        "unit": unit.model_dump(mode="json"),
        "ancestors": tree.ancestors(unit_id),
        "children": [
            ChildRef.of_unit(tree.units[c]).model_dump(mode="json") for c in tree.children(unit_id)
        ],
    }


def _shape_of(plan: Plan) -> tuple[Any, ...]:
    return (
        plan.year,
        plan.issuing_unit_id,
        [t.model_dump() for t in plan.targets],
        [s.model_dump() for s in plan.report_schedules],
    )


def _own_days(doc: UnitYear, delta: ActivityDelta) -> None:
    days = doc.change("days")
    kind = delta.kind.value
    day = day_index(delta.year, delta.occurred_on)
    found = days.setdefault(kind, [])
    if delta.sign > 0:
        insort(found, day)
    else:
        at = bisect_left(found, day)
        if at == len(found) or found[at] != day:
            raise ValueError(f"{delta.unit_id}: no {kind} on {delta.occurred_on} to remove")
        del found[at]
    if not found:
        del days[kind]


def _add_child(children: dict[str, Any], child: str, counts: Mapping[str, Any], sign: int) -> None:
    mine = children.setdefault(child, {})
    add_into(mine, counts, sign)
    if not mine:
        del children[child]


def _carry(docs: Docs, moving: UnitYear, path: list[str], year: int, sign: int) -> None:
    """Add (sign 1) or remove (−1) a unit's whole subtree to the ancestors on `path` (the unit
    first)."""
    activities = moving.part("activities")
    declared = moving.part("declared")
    cases = moving.part("cases")["s"]
    plans = moving.plan_ids()
    for index in range(1, len(path)):
        target = docs.get(path[index], year)
        branch = path[index - 1]
        if activities:
            add_into(target.change("activities"), activities, sign)
        if declared:
            add_into(target.change("declared"), declared, sign)
        if cases:
            mine = target.change("cases")
            add_into(mine["s"], cases, sign)
            _add_child(mine["c"], branch, cases, sign)
        for plan_id in plans:
            part = moving.plan(plan_id)
            if not part.is_empty():
                target.change_plan(plan_id).add_subtree(branch, part, sign)


def _reports_of(
    unit_id: str, shape: PlanShape, reports: Mapping[str, ReportState]
) -> dict[tuple[str, str], ReportState]:
    out = {}
    for schedule, period in shape.periods:
        found = reports.get(report_doc_id(unit_id, schedule.report_type, period.period))
        if found is not None:
            out[(schedule.report_type, period.period)] = found
    return out


def _restated(
    statuses: str,
    unit: Unit,
    shape: PlanShape,
    resubmitted: list[str],
    reports: Mapping[str, ReportState],
) -> str:
    """The report statuses with the periods of resubmitted reports read again."""
    out = list(statuses)
    for report_id in resubmitted:
        report = reports[report_id]
        index = shape.period_index(report.report_type, report.period)
        if index is not None:
            schedule, period = shape.periods[index]
            out[index] = report_status(unit, schedule, period, report)
    return "".join(out)

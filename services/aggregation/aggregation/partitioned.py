"""The answers' reads over N partitions (`AGGREGATION_PARTITIONS` > 1): the same documents as one
store gives, each the sum of the partitions' own (`merge_unit_year`, `merge_node`).

A unit at or below a province is in one partition only: its documents are that partition's. A
unit above the provinces (the country) is in every partition, each document holding the part of
its subtree that partition writes: counts add up (activities, declared totals, cases, a plan's
counts), per-child entries and rosters are unions (each province is in one partition). The
central units themselves are in every partition's roster: their own entry counts once, from the
partition that holds their facts (`routing.owner_of`); the others' copies are taken out.
Still a fixed number of reads by `_id`: a unit's node in each partition, then its document in
each partition that has the unit.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from pydantic_core import to_json

from lhpn_shared.contracts.plans import Plan
from lhpn_shared.mongo import Doc

from .batch import state_of
from .domain.rollup import SELF, Entry, PlanShape, add_into, add_leaves, is_plan_part, is_roster
from .repository import (
    UNIT_YEAR_KEYS,
    AggregationStore,
    part_name,
    unit_year_doc,
    unit_year_parts,
)
from .routing import owner_of

SHARED = ("plans",)
"""Collections every partition holds whole and alike (plans go to every partition)."""


class PartitionedReads:
    """What `Queries` reads (`get`, `read_list`, `all_docs`), over every partition's store."""

    def __init__(self, stores: Sequence[AggregationStore]) -> None:
        self.stores = list(stores)

    @property
    def partitions(self) -> int:
        return len(self.stores)

    async def get(self, name: str, doc_id: str, parts: Sequence[str] | None = None) -> Doc | None:
        if name in SHARED:
            return await self.stores[0].get(name, doc_id, parts)
        if name == "nodes":
            return merge_node(await self._each("nodes", doc_id))
        if name != "unit_years":
            raise ValueError(f"no partitioned read of {name}")
        unit_id = doc_id.rsplit("/", 1)[0]
        nodes = await self._each("nodes", unit_id)
        holders = [i for i, n in enumerate(nodes) if n is not None] or list(range(self.partitions))
        docs = await asyncio.gather(
            *(self.stores[i].get("unit_years", doc_id, parts) for i in holders)
        )
        found = [(i, d) for i, d in zip(holders, docs, strict=True) if d is not None]
        if len(found) <= 1:
            return found[0][1] if found else None
        plans: dict[str, Plan] = {}
        for field_name in {k for _, d in found for k in d if k not in UNIT_YEAR_KEYS}:
            name_ = part_name(field_name)
            if is_plan_part(name_):
                plan_id = name_.removeprefix("plan:")
                doc = await self.stores[0].get("plans", plan_id)
                if doc is not None:
                    plans[plan_id] = state_of(Plan, doc)
        return merge_unit_year(doc_id, found, plans, self.partitions)

    async def read_list(self, key: str) -> list[object]:
        lists = await asyncio.gather(*(s.read_list(key) for s in self.stores))
        return list(dict.fromkeys(v for values in lists for v in values))

    async def all_docs(self, name: str) -> list[Doc]:
        if name in SHARED:
            return await self.stores[0].all_docs(name)
        found = await asyncio.gather(*(s.all_docs(name) for s in self.stores))
        return list({d["_id"]: d for docs in found for d in docs}.values())

    async def _each(self, name: str, doc_id: str) -> list[Doc | None]:
        return list(await asyncio.gather(*(s.get(name, doc_id) for s in self.stores)))


def merge_node(docs: Sequence[Doc | None]) -> Doc | None:
    """A unit's node from the partitions that have it: its children are the union."""
    found = [d for d in docs if d is not None]
    if len(found) <= 1:
        return found[0] if found else None
    nodes = [json.loads(d["json"]) for d in found]
    children = {c["unit_id"]: c for n in nodes for c in n["children"]}
    merged = {**nodes[0], "children": [children[k] for k in sorted(children)]}
    return {"_id": found[0]["_id"], "json": json.dumps(merged, ensure_ascii=False)}


def merge_unit_year(
    doc_id: str, found: Sequence[tuple[int, Doc]], plans: dict[str, Plan], partitions: int
) -> Doc:
    """One unit-year document from the partitions' (partition, document): counts added,
    rosters joined in their order (the unit, then each child's subtree by the child's id),
    a central unit's copies in the partitions that do not own it taken out of the counts."""
    first = found[0][1]
    parts: dict[str, list[tuple[int, str]]] = {}
    for partition, doc in found:
        for name, value in unit_year_parts(doc).items():
            parts.setdefault(name, []).append((partition, value))
    merged: dict[str, str] = {}
    copies: dict[str, list[tuple[str, Entry]]] = {}
    """plan id → the copies of central units' entries to take out: (branch, entry)"""
    for name, values in parts.items():
        if is_roster(name):
            text, extra = _merge_roster(values, partitions)
            merged[name] = text
            copies[name.removeprefix("roster:")] = extra
        elif not is_plan_part(name) and name != "days":
            total: dict[str, Any] = {}
            for _, value in values:
                add_into(total, json.loads(value))
            if total:
                merged[name] = to_json(total).decode()
    for name, values in parts.items():
        if not is_plan_part(name):
            continue
        plan_id = name.removeprefix("plan:")
        counts: dict[str, Any] = {"s": {}, "c": {}}
        for _, value in values:
            add_into(counts, json.loads(value))
        plan = plans.get(plan_id)
        if plan is not None:
            shape = PlanShape.of(plan)
            for branch, entry in copies.get(plan_id, []):
                change = {path: -n for path, n in entry.contribution(shape).items()}
                add_leaves(counts["s"], change)
                if branch != SELF:
                    add_leaves(counts["c"].setdefault(branch, {}), change)
                    if not counts["c"][branch]:
                        del counts["c"][branch]
        merged[name] = to_json(counts).decode()
    unit_id = str(first["unit_id"])
    return unit_year_doc(
        doc_id, unit_id, int(first["year"]), {n: v for n, v in merged.items() if v}
    )


def _merge_roster(
    values: Sequence[tuple[int, str]], partitions: int
) -> tuple[str, list[tuple[str, Entry]]]:
    """(the roster's lines from every partition, each unit once, in roster order; the copies
    left out, as (branch, entry), to be taken out of the counts)."""
    lines: dict[str, tuple[int, str]] = {}
    extra: list[tuple[str, Entry]] = []
    for partition, text in values:
        for line in text.split("\n") if text else []:
            unit_id = line[: line.index("\t")]
            kept = lines.get(unit_id)
            if kept is None:
                lines[unit_id] = (partition, line)
                continue
            owner = owner_of(unit_id, partitions)
            drop = line if kept[0] == owner else kept[1]
            if kept[0] != owner and partition == owner:
                lines[unit_id] = (partition, line)
            _, branch, entry = Entry.from_line(drop)
            extra.append((branch, entry))
    ordered = sorted(
        (line for _, line in lines.values()),
        key=lambda line: (line.split("\t", 2)[1] != SELF, line.split("\t", 2)[1]),
    )
    return "\n".join(ordered), extra

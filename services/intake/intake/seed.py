"""Default data: the unit tree (CSV) and the plans (JSON) shipped with intake."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

from lhpn_shared.contracts.plans import Plan
from lhpn_shared.contracts.units import Unit

from .service import Intake

log = logging.getLogger("intake.seed")


def read_units(path: Path) -> list[Unit]:
    with path.open(encoding="utf-8", newline="") as f:
        return [
            Unit(
                unit_id=row["unit_id"],
                name=row["name"],
                kind=row["kind"],
                level=row["level"],
                parent_id=row["parent_id"] or None,
                valid_from=row.get("valid_from") or None,
                valid_to=row.get("valid_to") or None,
            )
            for row in csv.DictReader(f)
        ]


def read_plan(path: Path) -> Plan:
    return Plan.model_validate(json.loads(path.read_text(encoding="utf-8")))


async def load(intake: Intake, units_file: Path, plan_files: list[Path]) -> dict[str, int]:
    """Idempotent: only new or changed units and plans are stored and announced."""
    units = read_units(units_file)
    # parents first, so the tree is whole at every step
    depth = {u.unit_id: 0 for u in units}
    by_id = {u.unit_id: u for u in units}
    for u in units:
        p, d = u.parent_id, 0
        while p is not None and p in by_id and d < 10:
            d, p = d + 1, by_id[p].parent_id
        depth[u.unit_id] = d
    changed_units = 0
    for u in sorted(units, key=lambda u: (depth[u.unit_id], u.unit_id)):
        changed_units += await intake.upsert_unit(u)
    changed_plans = 0
    for path in plan_files:
        _, changed = await intake.publish_plan(read_plan(path))
        changed_plans += changed
    log.info(
        "default data loaded",
        extra={"units": len(units), "units_changed": changed_units, "plans_changed": changed_plans},
    )
    return {"units": len(units), "units_changed": changed_units, "plans_changed": changed_plans}

"""Default data: the unit tree (CSV) and the plans (JSON) shipped with intake."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from lhpn_shared.contracts.plans import Plan
from lhpn_shared.unit_files import read_units_csv

from .service import Intake
from .units import MAX_UNITS_PER_CHANGE

log = logging.getLogger("intake.seed")


def read_plan(path: Path) -> Plan:
    return Plan.model_validate(json.loads(path.read_text(encoding="utf-8")))


async def load(intake: Intake, units_file: Path, plan_files: list[Path]) -> dict[str, int]:
    """Idempotent: missing units are created (an existing one is left as it is, so a later
    rename or reorganisation stays), new or changed plans published."""
    units = read_units_csv(units_file)
    created = 0
    for start in range(0, len(units), MAX_UNITS_PER_CHANGE):
        outcome = await intake.units.load_units(
            units[start : start + MAX_UNITS_PER_CHANGE], "system:default-data"
        )
        created += outcome.created
    changed_plans = 0
    for path in plan_files:
        _, changed = await intake.publish_plan(read_plan(path))
        changed_plans += changed
    log.info(
        "default data loaded",
        extra={"units": len(units), "units_created": created, "plans_changed": changed_plans},
    )
    return {"units": len(units), "units_created": created, "plans_changed": changed_plans}

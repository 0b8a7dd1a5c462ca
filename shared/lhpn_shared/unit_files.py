"""Unit trees in CSV files (the default data, and what operators load with `lhpn units load`).

Columns: `unit_id,name,kind,level,parent_id,valid_from,valid_to` (dates ISO, empty = open).
"""

from __future__ import annotations

import csv
from pathlib import Path

from .contracts.units import Unit


def read_units_csv(path: Path) -> list[Unit]:
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

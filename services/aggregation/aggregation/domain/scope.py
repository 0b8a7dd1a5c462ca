"""A unit's subtree as every query walks it: its units, and which child branch each falls in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from lhpn_shared.contracts.units import Unit, UnitLevel, UnitTree


class UnknownUnit(LookupError):
    def __init__(self, unit_id: str) -> None:
        super().__init__(f"unit_id '{unit_id}' is not a known unit")
        self.unit_id = unit_id


class UnitRef(BaseModel):
    unit_id: str
    name: str
    level: UnitLevel

    @classmethod
    def of(cls, unit: Unit) -> UnitRef:
        return cls(**ref_fields(unit))


def ref_fields(unit: Unit) -> dict[str, Any]:
    """The UnitRef fields of a unit, for models that extend UnitRef."""
    return {"unit_id": unit.unit_id, "name": unit.name, "level": unit.level}


@dataclass(frozen=True)
class Subtree:
    root: Unit
    units: list[Unit]
    """The root first, then its descendants depth first."""
    children: list[Unit]
    branch: dict[str, str]
    """unit_id → the child of the root whose subtree holds it (the root itself is absent)."""


def subtree_of(tree: UnitTree, root_id: str) -> Subtree:
    root = tree.get(root_id)
    if root is None:
        raise UnknownUnit(root_id)
    children = [tree.units[c] for c in tree.children(root_id)]
    branch: dict[str, str] = {}
    units = [root]
    for child in children:
        for unit_id in tree.subtree(child.unit_id):
            branch[unit_id] = child.unit_id
            units.append(tree.units[unit_id])
    return Subtree(root=root, units=units, children=children, branch=branch)


def percent(part: int, whole: int) -> float | None:
    """part/whole as a percentage rounded to 2 decimals; None when nothing was expected."""
    return round(100 * part / whole, 2) if whole else None

"""How the answers name units: references, the children of the requested unit, percentages."""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel

from lhpn_shared.contracts.units import Unit, UnitLevel


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


class ChildRef(UnitRef):
    """A child of the requested unit, as the read model's tree lists it."""

    valid_from: date | None = None
    valid_to: date | None = None

    @classmethod
    def of_unit(cls, unit: Unit) -> ChildRef:
        return cls(**ref_fields(unit), valid_from=unit.valid_from, valid_to=unit.valid_to)

    def valid_during(self, start: date, end: date) -> bool:
        return (self.valid_from is None or self.valid_from <= end) and (
            self.valid_to is None or start <= self.valid_to
        )


def ref_fields(unit: Unit | UnitRef) -> dict[str, Any]:
    """The UnitRef fields of a unit, for models that extend UnitRef."""
    return {"unit_id": unit.unit_id, "name": unit.name, "level": unit.level}


def percent(part: int, whole: int) -> float | None:
    """part/whole as a percentage rounded to 2 decimals; None when nothing was expected."""
    return round(100 * part / whole, 2) if whole else None

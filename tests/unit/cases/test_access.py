"""Who may see and change a case: staff of its unit and above; admins and systems the facts."""

from __future__ import annotations

import pytest

from cases.domain.access import Access, case_access
from lhpn_shared.auth import Principal, Role
from lhpn_shared.contracts.units import Unit, UnitTree

TREE = UnitTree(
    [
        Unit(unit_id="54", name="Tỉnh", kind="tỉnh", level="province"),
        Unit(unit_id="555", name="TP", kind="thành phố", level="district", parent_id="54"),
        Unit(unit_id="22015", name="P1", kind="phường", level="commune", parent_id="555"),
        Unit(unit_id="557", name="TX", kind="thị xã", level="district", parent_id="54"),
        Unit(unit_id="22051", name="XP", kind="phường", level="commune", parent_id="557"),
    ]
)


def make_principal(role: Role, unit_id: str | None) -> Principal:
    return Principal(subject=f"{role.value}@{unit_id}", role=role, unit_id=unit_id)


@pytest.mark.parametrize(
    ("role", "unit_id", "expected"),
    [
        (Role.commune_staff, "22015", Access.personal),
        (Role.district_staff, "555", Access.personal),
        (Role.province_staff, "54", Access.personal),
        (Role.commune_staff, "22051", Access.none),
        (Role.district_staff, "557", Access.none),
        (Role.viewer, None, Access.none),
        (Role.viewer, "555", Access.none),
        (Role.admin, None, Access.facts),
        (Role.system, "555", Access.facts),
        (Role.system, "557", Access.none),
    ],
)
def test_access_to_a_case_of_commune_22015(
    role: Role, unit_id: str | None, expected: Access
) -> None:
    assert case_access(make_principal(role, unit_id), "22015", TREE) is expected


def test_a_commune_sees_nothing_of_its_district_s_own_cases() -> None:
    assert case_access(make_principal(Role.commune_staff, "22015"), "555", TREE) is Access.none


def test_staff_without_a_unit_see_nothing() -> None:
    assert case_access(make_principal(Role.province_staff, None), "22015", TREE) is Access.none

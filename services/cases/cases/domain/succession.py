"""Cases across a reorganisation of the unit tree (SPEC §2, §6), as pure rules.

A case stays the case of the unit that received it (`unit_id` never changes: what a unit did
stays its own). Which union holds it follows the tree of the day:
- while that unit exists, it holds the case (`domain.visibility`: its staff see the personal
  data and act; the unions above see it while it is referred up to them);
- from the day it is merged or split, the units continuing it (`UnitTree.responsible`: its
  successors valid that day, or for a unit dissolved without successors the unit answerable for
  its parent) hold it in its place: their staff see its personal data and act on it, and the
  unions above them as the case is referred up. A split unit's cases are held by every unit it
  was split into. A union the case was referred up to and that has since closed is followed
  the same way;
- the staff of the closed unit, and of the unions above it then, keep the facts only (in lists
  of their unit: counts, statuses, deadlines), never the requester's data nor changes: SPEC §6
  gives personal data to the union holding the case, and that is now the successor.
"""

from __future__ import annotations

from datetime import date, timedelta

from lhpn_shared.auth import STAFF_ROLES, Principal
from lhpn_shared.contracts.units import UnitTree

from .access import Access, case_access
from .visibility import holders
from .workflow import CaseState


def handlers(unit_id: str, tree: UnitTree, day: date) -> list[str]:
    """The units that handle a case of `unit_id` on `day` (the unit itself while it exists)."""
    return tree.responsible(unit_id, day) or [unit_id]


def case_access_on(principal: Principal, unit_id: str, tree: UnitTree, day: date) -> Access:
    """How near `principal` may come on `day` to a case of unit `unit_id` (`domain.access`,
    with the units holding it that day in place of a closed unit)."""
    owners = handlers(unit_id, tree, day)
    best = Access.none
    for owner in owners:
        access = case_access(principal, owner, tree)
        if access is Access.personal:
            return access
        if access is Access.facts:
            best = access
    if unit_id not in owners and case_access(principal, unit_id, tree) is not Access.none:
        return Access.facts  # the closed unit's own staff (and those above it then)
    return best


def sees_personal_data_on(
    principal: Principal, unit_id: str, state: CaseState, tree: UnitTree, day: date
) -> bool:
    """`domain.visibility.sees_personal_data`, with each holder replaced by the units that
    continue it on `day` once it is gone."""
    if principal.role not in STAFF_ROLES or principal.unit_id is None:
        return False
    current = {h for u in holders(unit_id, state) for h in handlers(u, tree, day)}
    return principal.unit_id in current


def holding_unit(unit_id: str, tree: UnitTree, day: date, caller_unit: str | None) -> str:
    """The union holding a case of `unit_id` on `day` on whose behalf `caller_unit` acts (the
    first of them when the caller is not one, e.g. for a split unit)."""
    owners = handlers(unit_id, tree, day)
    return caller_unit if caller_unit in owners else owners[0]


def succession_notice(unit_id: str, tree: UnitTree, day: date) -> str | None:
    """What to tell someone shown a case without its personal data because the union that
    received it is gone; None while it exists."""
    unit = tree.get(unit_id)
    owners = handlers(unit_id, tree, day)
    if unit is None or owners == [unit_id]:
        return None
    names = ", ".join(
        f"{o.name} ({o.unit_id})" for uid in owners if (o := tree.get(uid)) is not None
    )
    return (
        f"Thông tin cá nhân được ẩn: đơn vị {unit.name} đã được sắp xếp lại; hồ sơ do "
        f"{names or 'đơn vị kế thừa'} giữ từ ngày {_day_after(unit.valid_to)}."
    )


def _day_after(last_day: date | None) -> str:
    return f"{last_day + timedelta(days=1):%d/%m/%Y}" if last_day is not None else "…"


def case_scope(root_id: str, tree: UnitTree, day: date) -> list[str]:
    """The units whose cases a caller rooted at `root_id` lists on `day`: every unit that was
    ever below it, and every unit whose cases are handled that day by a unit below it."""
    scope = set(tree.subtree(root_id))
    for uid in tree.units:
        if uid not in scope and any(
            tree.is_within(owner, root_id) for owner in handlers(uid, tree, day)
        ):
            scope.add(uid)
    return sorted(scope)

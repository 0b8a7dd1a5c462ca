"""Who may come near a case (SPEC §6, §9.3), as pure rules over the unit tree.

- Staff of the case's unit or of one of its ancestors: `personal` — the case is in their
  subtree. Whether they actually see its personal data (requester, summary, notes) and may
  change it is narrowed by `domain.visibility`: staff of the case's own union, and of the unions
  it is referred up to; the others above it see the facts.
- Admins (operators) anywhere, and systems within their unit's subtree, see the facts only; a
  system may open a case without personal data, as it would on `lhpn.inbound`.
- Everyone else — staff of another branch, viewers — nothing.
"""

from __future__ import annotations

from enum import StrEnum

from lhpn_shared.auth import STAFF_ROLES, Principal, Role
from lhpn_shared.contracts.units import UnitTree


class Access(StrEnum):
    personal = "personal"
    """Within the staff member's subtree: facts, and personal data and changes where
    `domain.visibility` allows."""
    facts = "facts"
    """The non-personal facts only."""
    none = "none"


def case_access(principal: Principal, unit_id: str, tree: UnitTree) -> Access:
    """What `principal` may do with a case (or a list scope) of unit `unit_id`."""
    within = principal.unit_id is not None and tree.is_within(unit_id, principal.unit_id)
    if principal.role in STAFF_ROLES and within:
        return Access.personal
    if principal.role is Role.admin or (principal.role is Role.system and within):
        return Access.facts
    return Access.none

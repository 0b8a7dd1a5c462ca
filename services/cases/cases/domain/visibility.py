"""Who sees a case's personal data (SPEC §6): the requester, the summary, the notes of the
timeline and the reason a case was declined.

- Staff of the case's own union see it, always.
- Staff of a union above see it only while the case is **referred up** to their union. Referring
  up (`refer_up`) sends the case, with a reason, to the parent of the union that holds it now;
  from there it may go up again, one level at a time, and every union it went through keeps
  seeing it. The union at the top hands it back (`return_down`) and its staff no longer see it.
  Both keep the status: they are timeline entries of their own (actor, time, note and the union
  that holds the case afterwards) — "referred up" asks a parent union for help, the `referred`
  status sends the case out to a competent body (court, police, UBND…).
- Everyone else who may see the case at all (`domain.access`) — staff of a union above it that
  it was not referred up to, admins (operators), systems — sees the facts only, and every answer
  that leaves the personal data out says so (`withheld_notice`).
"""

from __future__ import annotations

from datetime import datetime

from lhpn_shared.auth import STAFF_ROLES, Principal, Role
from lhpn_shared.contracts.cases import CaseStatus
from lhpn_shared.contracts.units import UnitTree

from .workflow import CaseConflict, CaseState, InvalidDetails, TimelineAction, append_entry

HIDDEN = "Thông tin cá nhân được ẩn"
LIST_NOTICE = (
    f"{HIDDEN} trong danh sách hồ sơ; mở từng hồ sơ để xem nếu bạn được phép xem thông tin đó."
)


def holders(owner_unit_id: str, state: CaseState) -> tuple[str, ...]:
    """The unions whose staff see the personal data: the case's own, then those it is referred
    up to, nearest first."""
    return (owner_unit_id, *state.referred_up)


def sees_personal_data(principal: Principal, owner_unit_id: str, state: CaseState) -> bool:
    return principal.role in STAFF_ROLES and principal.unit_id in holders(owner_unit_id, state)


def withheld_notice(principal: Principal, owner_unit_id: str, state: CaseState) -> str:
    """Why `principal` is shown the case without its personal data, for the portal to show."""
    if principal.role is Role.admin:
        return f"{HIDDEN}: quản trị viên hệ thống không xem thông tin cá nhân của người yêu cầu."
    if principal.role is Role.system:
        return f"{HIDDEN}: hệ thống khác chỉ nhận các thông tin không định danh của hồ sơ."
    return (
        f"{HIDDEN}: hồ sơ thuộc đơn vị {owner_unit_id} và chưa được chuyển lên "
        f"đơn vị {principal.unit_id} của bạn. Chỉ cán bộ Hội của đơn vị giữ hồ sơ được xem."
    )


def refer_up(
    state: CaseState,
    *,
    owner_unit_id: str,
    by_unit_id: str | None,
    tree: UnitTree,
    actor: str,
    at: datetime,
    note: str | None,
) -> CaseState:
    """Refer the case up to the parent of the union that holds it now (`by_unit_id` must be
    that union). Raises `CaseConflict` (409) when the case is closed, held by another union or
    has nowhere higher to go; `InvalidDetails` (422) without a reason."""
    top = holders(owner_unit_id, state)[-1]
    if state.status is CaseStatus.closed:
        raise CaseConflict("Hồ sơ đã đóng, không chuyển lên cấp trên được.")
    if by_unit_id != top:
        raise CaseConflict(
            f"Hồ sơ đang do đơn vị {top} giữ; chỉ cán bộ đơn vị đó chuyển hồ sơ lên cấp trên."
        )
    unit = tree.get(top)
    parent = unit.parent_id if unit is not None else None
    if parent is None:
        raise CaseConflict(f"Đơn vị {top} không có cấp trên để chuyển hồ sơ lên.")
    if not (note or "").strip():
        raise InvalidDetails("note", "Chuyển hồ sơ lên cấp trên phải ghi rõ lý do.")
    return append_entry(
        state,
        TimelineAction.referred_up,
        actor=actor,
        at=at,
        note=note,
        changes={"referred_up": (*state.referred_up, parent)},
        to_unit_id=parent,
    )


def return_down(
    state: CaseState,
    *,
    owner_unit_id: str,
    by_unit_id: str | None,
    actor: str,
    at: datetime,
    note: str | None,
) -> CaseState:
    """Hand the case back from the union at the top (`by_unit_id`) to the one below it, whose
    staff keep it; the staff of the top union no longer see its personal data."""
    if not state.referred_up:
        raise CaseConflict("Hồ sơ chưa được chuyển lên cấp trên nên không có gì để trả về.")
    top = state.referred_up[-1]
    if by_unit_id != top:
        raise CaseConflict(f"Chỉ cán bộ đơn vị {top}, nơi đang giữ hồ sơ, được trả hồ sơ về.")
    below = holders(owner_unit_id, state)[-2]
    return append_entry(
        state,
        TimelineAction.returned_down,
        actor=actor,
        at=at,
        note=note,
        changes={"referred_up": state.referred_up[:-1]},
        to_unit_id=below,
    )

"""Who sees a case's personal data (SPEC §6): its own union always, the unions above it only while
it is referred up to them; referring up and handing back are timeline entries of their own."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from cases.domain.visibility import (
    HIDDEN,
    holders,
    refer_up,
    return_down,
    sees_personal_data,
    withheld_notice,
)
from cases.domain.workflow import (
    CaseConflict,
    CaseState,
    InvalidDetails,
    TimelineAction,
    apply_transition,
    open_case,
)
from lhpn_shared.auth import Principal, Role
from lhpn_shared.clock import LOCAL_TZ
from lhpn_shared.contracts.cases import CaseChannel, CaseKind, CaseStatus
from lhpn_shared.contracts.units import Unit, UnitTree

PROVINCE, DISTRICT, COMMUNE, OTHER_DISTRICT = "54", "555", "22015", "557"
TREE = UnitTree(
    [
        Unit(unit_id=PROVINCE, name="Tỉnh", kind="tỉnh", level="province"),
        Unit(unit_id=DISTRICT, name="TP", kind="thành phố", level="district", parent_id=PROVINCE),
        Unit(unit_id=COMMUNE, name="P1", kind="phường", level="commune", parent_id=DISTRICT),
        Unit(unit_id=OTHER_DISTRICT, name="TX", kind="thị xã", level="district", parent_id="54"),
    ]
)
T0 = datetime(2021, 3, 1, 9, 0, tzinfo=LOCAL_TZ)
STAFF = {
    COMMUNE: Role.commune_staff,
    DISTRICT: Role.district_staff,
    PROVINCE: Role.province_staff,
    OTHER_DISTRICT: Role.district_staff,
}


def staff_of(unit_id: str) -> Principal:
    return Principal(subject=f"can-bo-{unit_id}", role=STAFF[unit_id], unit_id=unit_id)


def make_case() -> CaseState:
    return open_case(
        kind=CaseKind.complaint,
        channel=CaseChannel.walk_in,
        received_on=T0.date(),
        actor="can-bo-xa",
        at=T0,
    )


def up(state: CaseState, by: str, note: str = "Xin ý kiến cấp trên") -> CaseState:
    return refer_up(
        state,
        owner_unit_id=COMMUNE,
        by_unit_id=by,
        tree=TREE,
        actor=f"can-bo-{by}",
        at=state.last_at + timedelta(hours=1),
        note=note,
    )


def down(state: CaseState, by: str) -> CaseState:
    return return_down(
        state,
        owner_unit_id=COMMUNE,
        by_unit_id=by,
        actor=f"can-bo-{by}",
        at=state.last_at + timedelta(hours=1),
        note=None,
    )


def seen_by(state: CaseState) -> set[str]:
    return {u for u in STAFF if sees_personal_data(staff_of(u), COMMUNE, state)}


def test_a_new_case_is_seen_only_by_staff_of_its_own_union() -> None:
    assert seen_by(make_case()) == {COMMUNE}


def test_referred_up_one_level_at_a_time_each_union_on_the_way_sees_it() -> None:
    at_district = up(make_case(), by=COMMUNE)
    assert seen_by(at_district) == {COMMUNE, DISTRICT}
    at_province = up(at_district, by=DISTRICT)
    assert seen_by(at_province) == {COMMUNE, DISTRICT, PROVINCE}
    assert holders(COMMUNE, at_province) == (COMMUNE, DISTRICT, PROVINCE)


def test_handed_back_down_the_union_at_the_top_no_longer_sees_it() -> None:
    at_province = up(up(make_case(), by=COMMUNE), by=DISTRICT)
    back_at_district = down(at_province, by=PROVINCE)
    assert seen_by(back_at_district) == {COMMUNE, DISTRICT}
    assert seen_by(down(back_at_district, by=DISTRICT)) == {COMMUNE}


def test_a_referral_up_is_a_timeline_entry_with_actor_time_note_and_union_keeping_the_status() -> (
    None
):
    state = apply_transition(make_case(), CaseStatus.accepted, actor="can-bo-xa", at=T0)
    referred = up(state, by=COMMUNE, note="Vụ việc phức tạp")
    entry = referred.timeline[-1]
    assert entry.action is TimelineAction.referred_up
    assert (entry.actor, entry.note, entry.to_unit_id) == (
        f"can-bo-{COMMUNE}",
        "Vụ việc phức tạp",
        DISTRICT,
    )
    assert entry.at == T0 + timedelta(hours=1)
    assert entry.from_status is entry.to_status is CaseStatus.accepted
    assert referred.status is CaseStatus.accepted and referred.revision == state.revision + 1
    back = down(referred, by=DISTRICT).timeline[-1]
    assert back.action is TimelineAction.returned_down and back.to_unit_id == COMMUNE


def test_referring_up_is_not_the_referred_status() -> None:
    referred = up(make_case(), by=COMMUNE)
    assert referred.referral is None and CaseStatus.referred not in referred.status_at


def test_only_the_union_holding_the_case_refers_it_further_up() -> None:
    at_district = up(make_case(), by=COMMUNE)
    for by in (COMMUNE, PROVINCE, OTHER_DISTRICT):
        with pytest.raises(CaseConflict, match=f"đơn vị {DISTRICT} giữ"):
            up(at_district, by=by)
    with pytest.raises(CaseConflict, match=f"đơn vị {COMMUNE} giữ"):
        up(make_case(), by=DISTRICT)


def test_only_the_union_at_the_top_hands_the_case_back() -> None:
    at_district = up(make_case(), by=COMMUNE)
    for by in (COMMUNE, PROVINCE):
        with pytest.raises(CaseConflict, match=f"đơn vị {DISTRICT}"):
            down(at_district, by=by)
    with pytest.raises(CaseConflict, match="chưa được chuyển lên"):
        down(make_case(), by=COMMUNE)


def test_a_case_at_the_root_union_has_nowhere_higher_to_go() -> None:
    at_province = up(up(make_case(), by=COMMUNE), by=DISTRICT)
    with pytest.raises(CaseConflict, match=f"Đơn vị {PROVINCE} không có cấp trên"):
        up(at_province, by=PROVINCE)


def test_a_referral_up_needs_a_reason_and_a_closed_case_cannot_be_referred_up() -> None:
    with pytest.raises(InvalidDetails) as refused:
        up(make_case(), by=COMMUNE, note="   ")
    assert refused.value.field == "note"
    state = make_case()
    for to in (CaseStatus.declined, CaseStatus.closed):
        state = apply_transition(state, to, actor="x", at=T0, note="không thuộc thẩm quyền")
    with pytest.raises(CaseConflict, match="đã đóng"):
        up(state, by=COMMUNE)


def test_a_referral_up_cannot_be_dated_before_the_last_step() -> None:
    state = up(make_case(), by=COMMUNE)
    with pytest.raises(InvalidDetails):
        refer_up(
            state,
            owner_unit_id=COMMUNE,
            by_unit_id=DISTRICT,
            tree=TREE,
            actor="x",
            at=T0 - timedelta(days=1),
            note="x",
        )


@pytest.mark.parametrize(
    ("principal", "says"),
    [
        (Principal(subject="ops", role=Role.admin), "quản trị viên"),
        (Principal(subject="system:hotline", role=Role.system, unit_id=DISTRICT), "hệ thống khác"),
        (staff_of(PROVINCE), f"chưa được chuyển lên đơn vị {PROVINCE}"),
    ],
)
def test_whoever_does_not_see_the_personal_data_is_told_why(
    principal: Principal, says: str
) -> None:
    state = make_case()
    assert not sees_personal_data(principal, COMMUNE, state)
    notice = withheld_notice(principal, COMMUNE, state)
    assert notice.startswith(HIDDEN) and says in notice


def test_admins_and_viewers_never_see_personal_data_even_of_a_referred_case() -> None:
    state = up(up(make_case(), by=COMMUNE), by=DISTRICT)
    for role in (Role.admin, Role.viewer, Role.system):
        for unit in (None, PROVINCE, COMMUNE):
            principal = Principal(subject="x", role=role, unit_id=unit)
            assert not sees_personal_data(principal, COMMUNE, state)

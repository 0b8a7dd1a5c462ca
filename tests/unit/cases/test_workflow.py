"""The case workflow (SPEC §6): every status pair, reopening once, the timeline, refusals."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import pytest

from cases.domain.workflow import (
    ALLOWED,
    STATUS_LABELS,
    CaseState,
    ExtensionRefused,
    InvalidDetails,
    InvalidTransition,
    Referral,
    TimelineAction,
    allowed_targets,
    apply_transition,
    grant_extension,
    open_case,
)
from lhpn_shared.clock import LOCAL_TZ
from lhpn_shared.contracts.cases import CaseChannel, CaseKind, CaseStatus

S = CaseStatus
T0 = datetime(2021, 3, 1, 9, 0, tzinfo=LOCAL_TZ)

# The shortest way from `received` to each status (reopening excluded).
PATHS: dict[CaseStatus, tuple[CaseStatus, ...]] = {
    S.received: (),
    S.accepted: (S.accepted,),
    S.declined: (S.declined,),
    S.in_progress: (S.accepted, S.in_progress),
    S.resolved: (S.accepted, S.in_progress, S.resolved),
    S.referred: (S.accepted, S.in_progress, S.referred),
    S.mediation_succeeded: (S.accepted, S.in_progress, S.mediation_succeeded),
    S.mediation_failed: (S.accepted, S.in_progress, S.mediation_failed),
    S.withdrawn: (S.accepted, S.in_progress, S.withdrawn),
    S.closed: (S.accepted, S.in_progress, S.resolved, S.closed),
}


def make_referral(**overrides: object) -> Referral:
    values: dict[str, object] = {
        "body": "Trung tâm Trợ giúp pháp lý nhà nước tỉnh",
        "referred_on": date(2021, 3, 20),
        "reference_number": "15/CV-HLHPN",
    }
    values.update(overrides)
    return Referral.model_validate(values)


def make_case(kind: CaseKind = CaseKind.complaint, at: datetime = T0) -> CaseState:
    return open_case(
        kind=kind,
        channel=CaseChannel.walk_in,
        received_on=at.date(),
        actor="can-bo-xa",
        at=at,
    )


def step(state: CaseState, to: CaseStatus, at: datetime | None = None) -> CaseState:
    """One valid move, with the details each target needs."""
    return apply_transition(
        state,
        to,
        actor="can-bo-xa",
        at=at or state.last_at + timedelta(hours=1),
        note="Lý do: không thuộc thẩm quyền" if to is S.declined else "ghi chú",
        referral=make_referral() if to is S.referred else None,
    )


def case_in(status: CaseStatus) -> CaseState:
    state = make_case()
    for to in PATHS[status]:
        state = step(state, to)
    assert state.status is status
    return state


ALL_PAIRS = list(itertools.product(CaseStatus, CaseStatus))
ALLOWED_PAIRS = [(a, b) for a, b in ALL_PAIRS if b in ALLOWED[a]]
REFUSED_PAIRS = [(a, b) for a, b in ALL_PAIRS if b not in ALLOWED[a]]


def test_the_table_names_every_status_and_a_label_for_each() -> None:
    assert set(ALLOWED) == set(CaseStatus)
    assert set(STATUS_LABELS) == set(CaseStatus)


def test_the_table_holds_the_documented_choices() -> None:
    assert ALLOWED[S.received] == {S.accepted, S.declined, S.referred, S.withdrawn}
    assert ALLOWED[S.accepted] == {
        S.in_progress,
        S.resolved,
        S.referred,
        S.mediation_succeeded,
        S.mediation_failed,
        S.withdrawn,
    }
    assert ALLOWED[S.mediation_failed] == {S.referred, S.closed}
    assert ALLOWED[S.closed] == {S.in_progress}


@pytest.mark.parametrize(("from_status", "to_status"), ALLOWED_PAIRS)
def test_every_allowed_transition_succeeds_and_is_written_in_the_timeline(
    from_status: CaseStatus, to_status: CaseStatus
) -> None:
    before = case_in(from_status)
    at = before.last_at + timedelta(minutes=5)

    after = step(before, to_status, at=at)

    assert after.status is to_status
    assert after.revision == before.revision + 1
    assert after.status_at[to_status] == at
    assert after.timeline[:-1] == before.timeline
    last = after.timeline[-1]
    assert (last.from_status, last.to_status, last.at, last.actor) == (
        from_status,
        to_status,
        at,
        "can-bo-xa",
    )
    assert before.status is from_status  # the old state is untouched


@pytest.mark.parametrize(("from_status", "to_status"), REFUSED_PAIRS)
def test_every_other_transition_is_refused_naming_the_allowed_ones(
    from_status: CaseStatus, to_status: CaseStatus
) -> None:
    state = case_in(from_status)

    with pytest.raises(InvalidTransition) as refused:
        step(state, to_status)

    error = refused.value
    assert set(error.allowed) == ALLOWED[from_status]
    assert error.message.startswith(
        f"Không thể chuyển hồ sơ từ '{STATUS_LABELS[from_status]}' "
        f"sang '{STATUS_LABELS[to_status]}'."
    )
    for allowed in ALLOWED[from_status]:
        assert f"'{STATUS_LABELS[allowed]}'" in error.message


def test_the_refusal_message_reads_as_vietnamese_for_a_received_case() -> None:
    with pytest.raises(InvalidTransition) as refused:
        step(case_in(S.received), S.closed)

    assert refused.value.message == (
        "Không thể chuyển hồ sơ từ 'Đã tiếp nhận' sang 'Đã đóng'. Được phép: 'Đã thụ lý', "
        "'Không thụ lý', 'Đã chuyển cơ quan có thẩm quyền', 'Đã rút yêu cầu'."
    )
    assert refused.value.allowed == (S.accepted, S.declined, S.referred, S.withdrawn)


def test_a_closed_case_can_be_reopened_once_and_then_no_more() -> None:
    closed = case_in(S.closed)

    reopened = step(closed, S.in_progress)
    assert reopened.reopened_at == reopened.last_at
    assert reopened.timeline[-1].action is TimelineAction.reopened

    closed_again = step(step(reopened, S.resolved), S.closed)
    assert allowed_targets(closed_again) == frozenset()
    with pytest.raises(InvalidTransition) as refused:
        step(closed_again, S.in_progress)
    assert refused.value.allowed == ()
    assert "đã được mở lại một lần" in refused.value.message


def test_declining_without_a_reason_is_refused() -> None:
    with pytest.raises(InvalidDetails) as refused:
        apply_transition(case_in(S.received), S.declined, actor="a", at=T0, note="  ")
    assert refused.value.field == "note"


def test_a_declined_case_keeps_its_reason() -> None:
    declined = apply_transition(
        case_in(S.received), S.declined, actor="a", at=T0, note="Không thuộc thẩm quyền"
    )
    assert declined.decline_reason == "Không thuộc thẩm quyền"


def test_referring_without_details_is_refused() -> None:
    with pytest.raises(InvalidDetails) as refused:
        apply_transition(case_in(S.in_progress), S.referred, actor="a", at=T0 + timedelta(1))
    assert refused.value.field == "referral"


def test_referral_details_need_body_date_and_reference_number() -> None:
    with pytest.raises(ValueError, match="reference_number"):
        make_referral(reference_number=" ")
    with pytest.raises(ValueError, match="body"):
        make_referral(body="")


def test_a_referred_case_keeps_where_it_was_sent() -> None:
    referral = make_referral()
    referred = apply_transition(
        case_in(S.in_progress), S.referred, actor="a", at=T0 + timedelta(1), referral=referral
    )
    assert referred.referral == referral


def test_referral_details_on_another_move_are_refused() -> None:
    with pytest.raises(InvalidDetails):
        apply_transition(
            case_in(S.received), S.accepted, actor="a", at=T0, referral=make_referral()
        )


def test_a_change_dated_before_the_last_timeline_entry_is_refused() -> None:
    state = case_in(S.accepted)
    with pytest.raises(InvalidDetails) as refused:
        apply_transition(state, S.in_progress, actor="a", at=state.last_at - timedelta(seconds=1))
    assert refused.value.field == "at"


def test_a_change_at_the_same_instant_as_the_last_entry_is_accepted() -> None:
    state = case_in(S.accepted)
    assert apply_transition(state, S.in_progress, actor="a", at=state.last_at).revision == 3


def test_a_naive_instant_is_refused() -> None:
    with pytest.raises(InvalidDetails):
        apply_transition(case_in(S.received), S.accepted, actor="a", at=datetime(2021, 3, 2, 9))


def test_instants_are_stored_in_utc() -> None:
    accepted = step(case_in(S.received), S.accepted, at=datetime(2021, 3, 2, 9, tzinfo=LOCAL_TZ))
    assert accepted.status_at[S.accepted] == datetime(2021, 3, 2, 2, tzinfo=UTC)
    assert accepted.status_at[S.accepted].tzinfo is UTC
    assert accepted.accepted_on == date(2021, 3, 2)


def test_a_new_case_starts_received_at_revision_one_with_one_timeline_entry() -> None:
    state = make_case()
    assert (state.status, state.revision, len(state.timeline)) == (S.received, 1, 1)
    assert state.timeline[0].action is TimelineAction.opened
    assert state.timeline[0].from_status is None


def test_a_case_cannot_be_received_after_it_is_recorded() -> None:
    with pytest.raises(InvalidDetails):
        open_case(
            kind=CaseKind.complaint,
            channel=CaseChannel.letter,
            received_on=date(2021, 3, 2),
            actor="a",
            at=T0,
        )


def test_a_denunciation_can_be_extended_twice_and_no_more() -> None:
    state = make_case(CaseKind.denunciation)
    state = step(step(state, S.accepted), S.in_progress)

    once = grant_extension(state, max_extensions=2, actor="a", at=state.last_at)
    twice = grant_extension(once, max_extensions=2, actor="a", at=once.last_at)

    assert twice.extensions_granted == 2
    assert twice.revision == state.revision + 2
    assert twice.timeline[-1].action is TimelineAction.extended
    assert twice.timeline[-1].from_status == twice.timeline[-1].to_status == S.in_progress
    with pytest.raises(ExtensionRefused, match="đã được gia hạn 2 lần"):
        grant_extension(twice, max_extensions=2, actor="a", at=twice.last_at)


def test_an_extension_is_refused_for_a_kind_without_extensions_or_a_case_not_being_resolved() -> (
    None
):
    with pytest.raises(ExtensionRefused):
        grant_extension(case_in(S.in_progress), max_extensions=0, actor="a", at=T0 + timedelta(1))
    with pytest.raises(ExtensionRefused):
        grant_extension(case_in(S.received), max_extensions=2, actor="a", at=T0 + timedelta(1))


def test_the_state_round_trips_through_json() -> None:
    state = step(case_in(S.in_progress), S.referred)
    assert CaseState.model_validate_json(state.model_dump_json()) == state


def test_a_state_read_back_with_naive_utc_instants_is_made_aware() -> None:
    state = step(case_in(S.received), S.accepted)
    stored = state.model_dump()
    stored["status_at"] = {k: v.replace(tzinfo=None) for k, v in stored["status_at"].items()}
    stored["timeline"] = [{**e, "at": e["at"].replace(tzinfo=None)} for e in stored["timeline"]]

    assert CaseState.model_validate(stored) == state

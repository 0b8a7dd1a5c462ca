"""Case deadlines (SPEC §6): the legal defaults, working days, and overdue at the due instant."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from cases.data import load_vn_holidays
from cases.domain.deadlines import (
    Deadline,
    DeadlineConfig,
    DeadlineName,
    KindDeadlines,
    compute_deadlines,
    is_overdue,
    next_due_at,
)
from cases.domain.holidays import HolidayCalendar
from cases.domain.workflow import (
    CaseState,
    Referral,
    apply_transition,
    grant_extension,
    open_case,
)
from lhpn_shared.clock import LOCAL_TZ
from lhpn_shared.contracts.cases import CaseChannel, CaseDeadline, CaseKind, CaseStatus

S = CaseStatus
HOLIDAYS = load_vn_holidays()
CONFIG = DeadlineConfig()


def at_local(day: date, hour: int = 9) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=LOCAL_TZ)


def make_case(
    kind: CaseKind = CaseKind.complaint,
    channel: CaseChannel = CaseChannel.walk_in,
    received_on: date = date(2021, 3, 1),
    *,
    complex: bool = False,
    remote_area: bool = False,
) -> CaseState:
    return open_case(
        kind=kind,
        channel=channel,
        received_on=received_on,
        actor="can-bo-xa",
        at=at_local(received_on),
        complex=complex,
        remote_area=remote_area,
    )


def move(state: CaseState, to: CaseStatus, on: date) -> CaseState:
    referral = None
    if to is S.referred:
        referral = Referral(body="Tòa án nhân dân huyện", referred_on=on, reference_number="7/CV")
    return apply_transition(state, to, actor="a", at=at_local(on), note="lý do", referral=referral)


def accepted(state: CaseState, on: date) -> CaseState:
    return move(state, S.accepted, on)


def deadlines(state: CaseState, config: DeadlineConfig = CONFIG) -> dict[DeadlineName, date]:
    return {d.name: d.due_on for d in compute_deadlines(state, config, HOLIDAYS)}


def test_a_complaint_received_on_1_march_must_be_accepted_by_11_march() -> None:
    # A complaint is a written request (đơn) however it came, so the union's own 10 working
    # days to handle it run as well: 2-5 March (1-4), 8-12 March (5-9), Monday 15 March (10).
    assert deadlines(make_case(received_on=date(2021, 3, 1))) == {
        DeadlineName.accept: date(2021, 3, 11),
        DeadlineName.handle_letter: date(2021, 3, 15),
    }


def test_a_complaint_accepted_on_8_march_is_due_30_days_later_on_7_april() -> None:
    assert deadlines(accepted(make_case(), date(2021, 3, 8))) == {
        DeadlineName.resolve: date(2021, 4, 7)
    }


def test_a_complaint_marked_complex_is_due_45_days_after_acceptance() -> None:
    case = accepted(make_case(complex=True), date(2021, 3, 8))
    assert deadlines(case) == {DeadlineName.resolve: date(2021, 4, 22)}


def test_a_complaint_in_a_remote_area_is_due_45_days_after_acceptance() -> None:
    case = accepted(make_case(remote_area=True), date(2021, 3, 8))
    assert deadlines(case) == {DeadlineName.resolve: date(2021, 4, 22)}


def test_a_complex_complaint_in_a_remote_area_is_due_60_days_after_acceptance() -> None:
    case = accepted(make_case(complex=True, remote_area=True), date(2021, 3, 8))
    assert deadlines(case) == {DeadlineName.resolve: date(2021, 5, 7)}


def test_the_resolve_deadline_stays_while_the_case_is_in_progress() -> None:
    case = move(accepted(make_case(), date(2021, 3, 8)), S.in_progress, date(2021, 3, 9))
    assert deadlines(case) == {DeadlineName.resolve: date(2021, 4, 7)}


def test_a_denunciation_is_due_30_days_after_acceptance_and_each_extension_adds_30() -> None:
    case = accepted(make_case(CaseKind.denunciation), date(2021, 3, 8))
    assert deadlines(case) == {DeadlineName.resolve: date(2021, 4, 7)}

    once = grant_extension(case, max_extensions=2, actor="a", at=at_local(date(2021, 4, 1)))
    assert deadlines(once) == {DeadlineName.resolve: date(2021, 5, 7)}

    # 8 March + 90 days is Sunday 6 June: the period ends with Monday 7 June.
    twice = grant_extension(once, max_extensions=2, actor="a", at=at_local(date(2021, 5, 1)))
    assert deadlines(twice) == {DeadlineName.resolve: date(2021, 6, 7)}


def test_a_calendar_deadline_falling_on_a_sunday_moves_to_monday() -> None:
    # 4 March + 10 days = Sunday 14 March 2021.
    assert deadlines(make_case(received_on=date(2021, 3, 4)))[DeadlineName.accept] == date(
        2021, 3, 15
    )


def test_a_calendar_deadline_falling_in_the_30_april_holidays_moves_past_them() -> None:
    # 20 April + 10 days = Fri 30/4 (holiday); Sat 1/5 holiday, Sun 2/5, Mon 3/5 compensatory.
    assert deadlines(make_case(received_on=date(2021, 4, 20)))[DeadlineName.accept] == date(
        2021, 5, 4
    )


def test_without_rolling_a_calendar_deadline_may_end_on_a_day_off() -> None:
    config = DeadlineConfig(roll_to_working_day=False)
    case = make_case(received_on=date(2021, 3, 4))
    assert deadlines(case, config)[DeadlineName.accept] == date(2021, 3, 14)


def test_a_letter_received_friday_23_april_2021_must_be_handled_by_11_may() -> None:
    # Counting working days from Monday 26/4: 26, 27, 28, 29 April (1-4); Fri 30/4 and
    # Sat 1/5 are holidays, Sun 2/5 a weekend, Mon 3/5 the compensatory day for 1/5;
    # 4, 5, 6, 7 May (5-8); the weekend; 10 May (9), 11 May (10).
    case = make_case(CaseKind.petition, CaseChannel.letter, date(2021, 4, 23))
    assert deadlines(case) == {DeadlineName.handle_letter: date(2021, 5, 11)}


def test_a_complaint_by_letter_has_both_the_accept_and_the_handle_letter_deadlines() -> None:
    case = make_case(CaseKind.complaint, CaseChannel.letter, date(2021, 4, 23))
    found = compute_deadlines(case, CONFIG, HOLIDAYS)

    # 23/4 + 10 days = Mon 3/5, the compensatory day off: the period ends Tue 4/5.
    assert [(d.name, d.due_on) for d in found] == [
        (DeadlineName.accept, date(2021, 5, 4)),
        (DeadlineName.handle_letter, date(2021, 5, 11)),
    ]
    assert next_due_at(found) == datetime(2021, 5, 5, tzinfo=LOCAL_TZ)


def test_a_consultation_by_letter_is_handled_as_a_letter() -> None:
    case = make_case(CaseKind.consultation, CaseChannel.letter, date(2021, 4, 23))
    assert deadlines(case) == {DeadlineName.handle_letter: date(2021, 5, 11)}


def test_a_consultation_at_the_office_has_no_deadline() -> None:
    case = make_case(CaseKind.consultation, CaseChannel.walk_in)
    assert compute_deadlines(case, CONFIG, HOLIDAYS) == []
    assert next_due_at([]) is None


def test_the_handle_letter_deadline_ends_once_the_letter_is_accepted() -> None:
    case = make_case(CaseKind.petition, CaseChannel.letter, date(2021, 4, 23))
    assert deadlines(accepted(case, date(2021, 4, 26))) == {}


@pytest.mark.parametrize(
    "path",
    [
        (S.declined,),
        (S.referred,),
        (S.withdrawn,),
        (S.accepted, S.resolved),
        (S.accepted, S.in_progress, S.mediation_succeeded),
        (S.accepted, S.in_progress, S.mediation_failed),
        (S.accepted, S.in_progress, S.resolved, S.closed),
    ],
    ids=lambda path: "-".join(path),
)
def test_no_deadline_is_pending_once_the_case_has_an_outcome(path: tuple[CaseStatus, ...]) -> None:
    case = make_case(CaseKind.complaint, CaseChannel.letter)
    for i, to in enumerate(path, start=1):
        case = move(case, to, date(2021, 3, 1 + i))
    assert compute_deadlines(case, CONFIG, HOLIDAYS) == []


def test_a_reopened_case_counts_its_resolve_deadline_from_the_reopening() -> None:
    case = accepted(make_case(), date(2021, 3, 8))
    for to, on in [(S.resolved, date(2021, 3, 20)), (S.closed, date(2021, 3, 21))]:
        case = move(case, to, on)
    reopened = move(case, S.in_progress, date(2021, 6, 1))
    assert deadlines(reopened) == {DeadlineName.resolve: date(2021, 7, 1)}


def test_the_due_instant_is_midnight_in_vietnam_after_the_due_day() -> None:
    deadline = Deadline(DeadlineName.accept, date(2021, 3, 11))
    assert deadline.due_at == datetime(2021, 3, 12, 0, 0, tzinfo=LOCAL_TZ)
    assert deadline.to_contract() == CaseDeadline(
        name="accept", due_on=deadline.due_on, due_at=deadline.due_at
    )


def test_a_case_is_on_time_until_the_end_of_the_due_day_and_overdue_from_then() -> None:
    found = compute_deadlines(make_case(received_on=date(2021, 3, 1)), CONFIG, HOLIDAYS)
    due_at = datetime(2021, 3, 12, tzinfo=LOCAL_TZ)

    assert not is_overdue(found, datetime(2021, 3, 11, 23, 59, 59, tzinfo=LOCAL_TZ))
    assert not is_overdue(found, due_at - timedelta(microseconds=1))
    assert is_overdue(found, due_at)
    assert is_overdue(found, due_at + timedelta(days=3))


def test_overdue_compares_instants_whatever_their_timezone() -> None:
    found = compute_deadlines(make_case(received_on=date(2021, 3, 1)), CONFIG, HOLIDAYS)
    # 17:00 UTC on 11 March is already 00:00 on 12 March in Vietnam.
    utc = datetime.fromisoformat("2021-03-11T17:00:00+00:00")
    assert is_overdue(found, utc)
    assert not is_overdue(found, utc - timedelta(seconds=1))


def test_overdue_needs_an_aware_instant() -> None:
    with pytest.raises(ValueError):
        is_overdue([], datetime(2021, 3, 12))


def test_deadlines_follow_the_configuration() -> None:
    config = DeadlineConfig(
        kinds={CaseKind.petition: KindDeadlines(accept_within_days=5)},
        letter_within_working_days=None,
    )
    case = make_case(CaseKind.petition, CaseChannel.letter, date(2021, 3, 1))
    assert deadlines(case, config) == {DeadlineName.accept: date(2021, 3, 8)}  # 6/3 is Sat
    assert deadlines(make_case(CaseKind.complaint), config) == {}


def test_an_extension_needs_a_length() -> None:
    with pytest.raises(ValueError, match="extension_days"):
        KindDeadlines(resolve_within_days=30, max_extensions=1)


def test_working_days_count_weekends_only_when_no_holidays_are_known() -> None:
    assert HolidayCalendar().add_working_days(date(2021, 4, 23), 10) == date(2021, 5, 7)

"""When the agenda alone may tell a sweep that no step is due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from reminders.agenda import RESCAN_AFTER, AgendaState, earliest_of

T = datetime(2021, 10, 27, 8, tzinfo=UTC)
MS = timedelta(milliseconds=1)


def looked(**over: object) -> AgendaState:
    fields: dict[str, object] = {
        "change": "a",
        "scanned": "a",
        "scanned_as_of": T,
        "earliest": T + timedelta(hours=1),
    }
    fields.update(over)
    return AgendaState(**fields)  # type: ignore[arg-type]


def test_nothing_is_due_before_the_first_step_left_and_something_is_at_it() -> None:
    state = looked()

    assert state.nothing_due(T)
    assert state.nothing_due(T + timedelta(hours=1) - MS)
    assert not state.nothing_due(T + timedelta(hours=1))


def test_an_agenda_written_since_the_last_look_tells_nothing() -> None:
    assert not looked(change="b").nothing_due(T)


def test_an_agenda_never_looked_at_tells_nothing() -> None:
    assert not AgendaState().nothing_due(T)
    assert not AgendaState(change="a", earliest=T + timedelta(days=1)).nothing_due(T)


def test_no_step_left_anywhere_means_nothing_due_until_the_next_hourly_look() -> None:
    state = looked(earliest=None)

    assert state.nothing_due(T + RESCAN_AFTER - MS)
    assert not state.nothing_due(T + RESCAN_AFTER)


def test_a_look_as_of_a_later_instant_tells_nothing_about_an_earlier_one() -> None:
    # a sweep asked for a future as-of recorded its look; the sweeps of now must still read
    state = looked(scanned_as_of=T + timedelta(days=2), earliest=T + timedelta(days=3))

    assert not state.nothing_due(T)
    assert not state.nothing_due(T + timedelta(days=2) - MS)
    assert state.nothing_due(T + timedelta(days=2))


def test_the_earliest_of_some_instants_ignores_the_missing_ones() -> None:
    assert earliest_of([None, T + MS, T, None]) == T
    assert earliest_of([None]) is None
    assert earliest_of([]) is None

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reminders.delivery.retry import next_attempt_at

NOW = datetime(2021, 11, 2, 1, 0, tzinfo=UTC)


def test_the_default_backoff_waits_1_4_16_64_minutes_then_gives_up():
    waits = [next_attempt_at(n, NOW) for n in range(1, 6)]

    assert waits == [
        NOW + timedelta(minutes=1),
        NOW + timedelta(minutes=4),
        NOW + timedelta(minutes=16),
        NOW + timedelta(minutes=64),
        None,
    ]


def test_the_wait_never_exceeds_the_cap():
    at = next_attempt_at(9, NOW, base=timedelta(minutes=10), factor=10, max_attempts=20)

    assert at == NOW + timedelta(hours=6)


def test_one_attempt_allowed_means_the_first_failure_is_final():
    assert next_attempt_at(1, NOW, max_attempts=1) is None


def test_attempts_start_at_one():
    with pytest.raises(ValueError, match="at least 1"):
        next_attempt_at(0, NOW)

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from reminders.settings import RemindersSettings


def test_the_reminder_policy_of_one_report_type_comes_from_json_in_the_environment(monkeypatch):
    monkeypatch.setenv(
        "REMINDER_POLICY",
        json.dumps(
            {
                "by_report_type": {
                    "monthly": [
                        {"step": "due_day", "offset": "-P1D"},
                        {"step": "after_2d", "offset": "P2D"},
                        {"step": "parent_digest", "offset": "P4D", "audience": "parent"},
                    ]
                }
            }
        ),
    )
    monkeypatch.setenv("SMTP_PORT", "2525")

    settings = RemindersSettings()

    monthly = settings.reminder_policy.steps_for("monthly")
    assert [(s.step, s.offset) for s in monthly] == [
        ("due_day", timedelta(days=-1)),
        ("after_2d", timedelta(days=2)),
        ("parent_digest", timedelta(days=4)),
    ]
    assert [s.step for s in settings.reminder_policy.steps_for("thematic_annual")] == [
        "before_3d",
        "due_day",
        "after_1d",
        "after_3d",
        "parent_digest",
    ]
    assert settings.smtp_config().port == 2525
    assert (settings.reminders_port, settings.sweep_interval_seconds) == (8003, 60)


def test_a_policy_naming_a_step_twice_is_refused_at_start():
    with pytest.raises(ValidationError, match="repeated: due_day"):
        RemindersSettings(
            reminder_policy={
                "steps": [
                    {"step": "due_day", "offset": "-P1D"},
                    {"step": "due_day", "offset": "P1D"},
                ]
            }
        )


def test_retries_back_off_as_configured_then_give_up():
    policy = RemindersSettings(
        retry_base_seconds=30, retry_factor=2, retry_max_attempts=3
    ).retry_policy()
    now = datetime(2021, 10, 27, tzinfo=UTC)

    assert policy.next_attempt_at(1, now) == now + timedelta(seconds=30)
    assert policy.next_attempt_at(2, now) == now + timedelta(seconds=60)
    assert policy.next_attempt_at(3, now) is None

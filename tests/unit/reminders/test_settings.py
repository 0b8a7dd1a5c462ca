from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from reminders.delivery.addresses import LOOPBACK
from reminders.settings import DEV_WEBHOOK_SECRET_KEYS, RemindersSettings


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


PRODUCTION: dict[str, Any] = {
    "env": "production",
    "jwt_secret": "a-production-secret-of-at-least-32-chars",
    "admin_password": "a-production-admin-password",
    "broker_user_prefix": "lhpn-",
    "rabbit_url": "amqp://lhpn-reminders:pw@rabbit:5672/",
    "mongo_url": "mongodb://reminders:pw@mongo:27017/",
}


def make_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def test_production_refuses_the_development_webhook_secret_key_even_kept_for_opening():
    for keys in (DEV_WEBHOOK_SECRET_KEYS, f"k2:{make_key()},{DEV_WEBHOOK_SECRET_KEYS}"):
        with pytest.raises(ValidationError, match="WEBHOOK_SECRET_KEYS holds the development key"):
            RemindersSettings(**PRODUCTION, webhook_secret_keys=keys)
    key = make_key()
    settings = RemindersSettings(**PRODUCTION, webhook_secret_keys=f"k1:{key}")
    assert settings.webhook_keyring().key_ids == ("k1",)


def test_a_malformed_webhook_key_setting_is_refused_without_showing_it():
    with pytest.raises(ValidationError, match="WEBHOOK_SECRET_KEYS: key 'k1' must be 32") as bad:
        RemindersSettings(webhook_secret_keys="k1:c2hvcnQ=")
    assert "c2hvcnQ=" not in str(bad.value)


def test_webhooks_reach_loopback_in_development_and_only_public_addresses_in_production():
    assert RemindersSettings().allowed_networks() == LOOPBACK
    production = RemindersSettings(**PRODUCTION, webhook_secret_keys=f"k1:{make_key()}")
    assert production.allowed_networks() == ()
    listed = RemindersSettings(webhook_allowed_networks="10.1.0.0/16, ::1")
    assert [str(n) for n in listed.allowed_networks()] == ["10.1.0.0/16", "::1/128"]
    assert RemindersSettings(webhook_allowed_networks="").allowed_networks() == ()
    with pytest.raises(ValidationError, match="WEBHOOK_ALLOWED_NETWORKS"):
        RemindersSettings(webhook_allowed_networks="intranet")

"""A production start refuses every development default and insecure setting, naming it; an
unset ENV counts as production."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from aggregation.settings import AggregationSettings
from cases.settings import DEV_CASE_KEYS, CasesSettings
from intake.settings import IntakeSettings
from lhpn_shared.settings import DEV_JWT_SECRET, ServiceSettings
from portal.settings import PortalSettings
from reminders.settings import DEV_WEBHOOK_SECRET_KEYS, RemindersSettings

SERVICES: dict[str, type[ServiceSettings]] = {
    "intake": IntakeSettings,
    "cases": CasesSettings,
    "reminders": RemindersSettings,
    "aggregation": AggregationSettings,
}
KEY = "k1:" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="  # 32 bytes, not a dev key


def production(service: str, **over: Any) -> dict[str, Any]:
    """Settings a production start of `service` accepts, with `over` changed."""
    values: dict[str, Any] = {
        "env": "production",
        "jwt_secret": "a-production-secret-of-at-least-32-characters",
        "admin_password": "a-production-admin-password",
        "broker_user_prefix": "lhpn-",
        "rabbit_url": f"amqp://lhpn-{service}:a-broker-password@rabbitmq:5672/",
        "mongo_url": "mongodb://lhpn:a-db-password@mongo:27017/?authSource=admin",
    }
    if service == "cases":
        values["case_keys"] = KEY
    if service == "reminders":
        values["webhook_secret_keys"] = KEY
    return {**values, **over}


@pytest.mark.parametrize("service", SERVICES)
def test_production_starts_with_real_secrets_and_credentials(service: str) -> None:
    settings = SERVICES[service](**production(service))
    assert settings.env == "production"
    assert settings.broker_user == f"lhpn-{service}"


FORBIDDEN = [
    ("admin_password", "admin", "ADMIN_PASSWORD is the development default"),
    ("admin_password", "", "ADMIN_PASSWORD is not set"),
    ("jwt_secret", DEV_JWT_SECRET, "JWT_SECRET is the development default"),
    ("jwt_secret", "short-secret", "JWT_SECRET must be at least 32 characters"),
    ("rabbit_url", "amqp://guest:guest@rabbitmq:5672/", "RABBIT_URL uses RabbitMQ's guest account"),
    ("rabbit_url", "amqp://guest:other@rabbitmq:5672/", "RABBIT_URL uses RabbitMQ's guest account"),
    ("rabbit_url", "amqp://rabbitmq:5672/", "RABBIT_URL uses RabbitMQ's guest account"),
    ("rabbit_url", "amqp://lhpn:pw@rabbitmq:5672/", "RABBIT_URL connects as 'lhpn', not as"),
    ("mongo_url", "mongodb://mongo:27017/", "MONGO_URL has no credentials"),
    ("mongo_url", "mongodb://@mongo:27017/", "MONGO_URL has no credentials"),
]


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize(
    ("field", "value", "named"),
    FORBIDDEN,
    ids=[
        "dev-admin-password",
        "no-admin-password",
        "dev-jwt-secret",
        "short-jwt-secret",
        "guest-account",
        "guest-other-password",
        "no-broker-user",
        "another-services-user",
        "mongo-without-credentials",
        "mongo-empty-user",
    ],
)
def test_a_production_start_with_a_forbidden_setting_fails_naming_it(
    service: str, field: str, value: str, named: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        SERVICES[service](**production(service, **{field: value}))
    message = str(refused.value)
    assert "refused in ENV=production" in message and named in message
    for secret in ("a-broker-password", "a-db-password", DEV_JWT_SECRET, "short-secret"):
        assert secret not in message  # settings and URLs are named, never echoed


def test_a_production_start_of_cases_with_the_development_key_fails_naming_it() -> None:
    with pytest.raises(ValidationError, match="CASE_KEYS holds the development key"):
        CasesSettings(**production("cases", case_keys=DEV_CASE_KEYS))


def test_a_production_start_of_reminders_with_the_development_key_fails_naming_it() -> None:
    with pytest.raises(ValidationError, match="WEBHOOK_SECRET_KEYS holds the development key"):
        RemindersSettings(**production("reminders", webhook_secret_keys=DEV_WEBHOOK_SECRET_KEYS))


def test_the_portal_needs_no_broker_or_database_credentials_but_refuses_the_other_defaults() -> (
    None
):
    real = {
        "env": "production",
        "jwt_secret": "a-production-secret-of-at-least-32-characters",
        "admin_password": "a-production-admin-password",
        "session_secret": "a-production-session-secret-of-32-characters",
    }
    assert PortalSettings(**real).env == "production"  # guest RABBIT_URL, local MONGO_URL: unused
    with pytest.raises(ValidationError, match="JWT_SECRET is the development default"):
        PortalSettings(**{**real, "jwt_secret": DEV_JWT_SECRET})


def test_a_mongo_url_with_a_certificate_mechanism_counts_as_credentials() -> None:
    url = "mongodb://mongo:27017/?authMechanism=MONGODB-X509&tls=true"
    assert IntakeSettings(**production("intake", mongo_url=url)).mongo_url == url


@pytest.mark.parametrize("service", SERVICES)
def test_an_unset_env_counts_as_production(service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENV", raising=False)
    with pytest.raises(ValidationError, match="refused in ENV=production") as refused:
        SERVICES[service]()  # every development default
    for setting in ("ADMIN_PASSWORD", "JWT_SECRET", "RABBIT_URL", "MONGO_URL"):
        assert setting in str(refused.value)
    monkeypatch.setenv("ENV", "development")  # asked for: the defaults are fine
    assert SERVICES[service]().env == "development"

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from fastapi import HTTPException
from pydantic import ValidationError

from lhpn_shared.auth import Principal, Role, can_access_unit, issue_token, verify_token
from lhpn_shared.contracts.events import Envelope, make_event, parse_data
from lhpn_shared.contracts.units import Unit, UnitTree
from lhpn_shared.periods import BadPeriod, ended_by, period_bounds
from lhpn_shared.settings import ServiceSettings

NOW = datetime(2021, 3, 5, 2, 0, tzinfo=UTC)


def tree() -> UnitTree:
    return UnitTree(
        [
            Unit(unit_id="54", name="Tỉnh Phú Yên", kind="tỉnh", level="province"),
            Unit(
                unit_id="555", name="TP Tuy Hòa", kind="thành phố", level="district", parent_id="54"
            ),
            Unit(
                unit_id="557", name="TX Sông Cầu", kind="thị xã", level="district", parent_id="54"
            ),
            Unit(unit_id="22015", name="Phường 1", kind="phường", level="commune", parent_id="555"),
        ]
    )


def test_production_refuses_the_development_admin_password_and_jwt_secret() -> None:
    with pytest.raises(ValidationError) as err:
        ServiceSettings(env="production")
    assert "ADMIN_PASSWORD" in str(err.value) and "JWT_SECRET" in str(err.value)


def test_production_accepts_real_secrets() -> None:
    s = ServiceSettings(
        env="production",
        admin_password="a-long-real-password",
        jwt_secret="x" * 40,
        broker_user_prefix="lhpn-",
        rabbit_url="amqp://lhpn-service:secret@rabbitmq:5672/",
        mongo_url="mongodb://lhpn:secret@mongo:27017/?authSource=admin",
    )
    assert s.env == "production"


def test_settings_come_from_the_environment_names_of_the_spec(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MONGO_URL", "mongodb://db:27017/")
    monkeypatch.setenv("RABBIT_URL", "amqp://u:p@mq:5672/")
    monkeypatch.setenv("SMTP_PORT", "2525")
    s = ServiceSettings()
    assert (s.mongo_url, s.rabbit_url, s.smtp_port) == (
        "mongodb://db:27017/",
        "amqp://u:p@mq:5672/",
        2525,
    )


def test_a_token_carries_role_and_unit_and_expires() -> None:
    settings = ServiceSettings(jwt_ttl_minutes=10)
    token, ttl = issue_token(
        settings, Principal(subject="lan", role=Role.district_staff, unit_id="555"), NOW
    )
    assert ttl == 600
    p = verify_token(settings, token, NOW + timedelta(minutes=9))
    assert (p.subject, p.role, p.unit_id) == ("lan", Role.district_staff, "555")
    with pytest.raises(HTTPException) as expired:
        verify_token(settings, token, NOW + timedelta(minutes=10))
    assert expired.value.status_code == 401
    with pytest.raises(HTTPException):
        verify_token(ServiceSettings(jwt_secret="another-secret-entirely-xxxxxxxxx"), token, NOW)


def test_staff_reach_only_their_subtree() -> None:
    t = tree()
    district = Principal(subject="a", role=Role.district_staff, unit_id="555")
    assert can_access_unit(district, "22015", t)
    assert not can_access_unit(district, "557", t)
    assert not can_access_unit(district, "54", t)
    assert can_access_unit(
        Principal(subject="b", role=Role.province_staff, unit_id="54"), "22015", t
    )
    assert can_access_unit(Principal(subject="c", role=Role.admin), "557", t)


def test_the_unit_tree_answers_ancestors_and_subtrees() -> None:
    t = tree()
    assert t.ancestors("22015") == ["555", "54"]
    assert t.subtree("555") == ["555", "22015"]
    assert set(t.subtree("54")) == {"54", "555", "557", "22015"}
    assert t.subtree("nope") == []


@pytest.mark.parametrize(
    ("key", "first", "last"),
    [
        ("2021", date(2021, 1, 1), date(2021, 12, 31)),
        ("2021-H1", date(2021, 1, 1), date(2021, 6, 30)),
        ("2021-H2", date(2021, 7, 1), date(2021, 12, 31)),
        ("2021-Q3", date(2021, 7, 1), date(2021, 9, 30)),
        ("2021-02", date(2021, 2, 1), date(2021, 2, 28)),
    ],
)
def test_period_keys_name_calendar_windows(key: str, first: date, last: date) -> None:
    assert period_bounds(key) == (first, last)


def test_a_bad_period_key_is_refused() -> None:
    with pytest.raises(BadPeriod):
        period_bounds("2021-13")


def test_a_half_year_has_ended_at_midnight_local_time() -> None:
    assert not ended_by(date(2021, 6, 30), datetime(2021, 6, 30, 16, 59, tzinfo=UTC))
    assert ended_by(date(2021, 6, 30), datetime(2021, 6, 30, 17, 0, tzinfo=UTC))


def test_an_event_round_trips_through_its_envelope() -> None:
    unit = tree().units["22015"]
    env = make_event("unit.upserted", unit, source="intake", occurred_at=NOW, unit_id="22015")
    again = Envelope.model_validate_json(env.model_dump_json())
    assert again.routing_key == "unit.upserted.v1"
    assert parse_data(again) == unit


def test_an_envelope_without_a_timezone_is_refused() -> None:
    with pytest.raises(ValidationError):
        Envelope.model_validate(
            {
                "event_id": "5f0c7a3e-2b1d-4a51-9f0e-1c2d3e4f5a6b",
                "type": "activity.recorded",
                "version": 1,
                "occurred_at": "2021-03-05T09:00:00",
                "source": "x",
                "data": {},
            }
        )

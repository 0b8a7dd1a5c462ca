"""Builders and callers for the cases integration tests: random ids, a small unit tree, tokens."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from cases.settings import CasesSettings
from lhpn_shared.auth import Principal, Role, issue_token
from lhpn_shared.clock import FixedClock
from lhpn_shared.contracts.events import make_event
from lhpn_shared.contracts.units import Unit

PROVINCE, DISTRICT, COMMUNE = "54", "555", "22015"
OTHER_DISTRICT, OTHER_COMMUNE = "557", "22051"
UNITS = [
    Unit(unit_id=PROVINCE, name="Tỉnh Phú Yên", kind="tỉnh", level="province"),
    Unit(
        unit_id=DISTRICT,
        name="Thành phố Tuy Hoà",
        kind="thành phố",
        level="district",
        parent_id=PROVINCE,
    ),
    Unit(unit_id=COMMUNE, name="Phường 1", kind="phường", level="commune", parent_id=DISTRICT),
    Unit(
        unit_id=OTHER_DISTRICT,
        name="Thị xã Sông Cầu",
        kind="thị xã",
        level="district",
        parent_id=PROVINCE,
    ),
    Unit(
        unit_id=OTHER_COMMUNE,
        name="Phường Xuân Phú",
        kind="phường",
        level="commune",
        parent_id=OTHER_DISTRICT,
    ),
]
API_KEY = "hotline-test-key-2c1f0d"  # system "hotline", scoped to DISTRICT (see the settings)
QUEUES = ("cases.events", "cases.events.dlq", "cases.inbound", "cases.inbound.dlq")


@dataclass
class Caller:
    """A user of the API; the token is minted at the clock's current time on each use."""

    settings: CasesSettings
    clock: FixedClock
    role: Role
    unit_id: str | None

    @property
    def subject(self) -> str:
        return f"{self.role.value}-{self.unit_id or 'all'}"

    @property
    def headers(self) -> dict[str, str]:
        principal = Principal(subject=self.subject, role=self.role, unit_id=self.unit_id)
        token, _ = issue_token(self.settings, principal, self.clock.now())
        return {"Authorization": f"Bearer {token}"}


SYSTEM_HEADERS = {"X-API-Key": API_KEY}


def make_case(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "case_id": str(uuid.uuid4()),
        "unit_id": COMMUNE,
        "kind": "complaint",
        "topic": "domestic_violence",
        "channel": "walk_in",
        "received_on": "2021-03-01",
        "summary": "Đề nghị hỗ trợ pháp lý về bạo lực gia đình",
        "requester": {"name": f"Người yêu cầu {uuid.uuid4().hex[:6]}", "birth_year": 1985},
        "flags": ["domestic_violence_victim"],
    }
    body.update(over)
    return body


def make_case_facts(**over: Any) -> dict[str, Any]:
    """`data` of a `case.opened` another system publishes: no personal data."""
    data: dict[str, Any] = {
        "case_id": str(uuid.uuid4()),
        "unit_id": COMMUNE,
        "kind": "petition",
        "topic": "land",
        "channel": "hotline",
        "status": "received",
        "received_on": "2021-03-01",
        "flags": ["poor_household"],
    }
    data.update(over)
    return data


def make_envelope(data: dict[str, Any], **over: Any) -> dict[str, Any]:
    env: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "type": "case.opened",
        "version": 1,
        "occurred_at": "2021-03-01T10:00:00+07:00",
        "source": "hotline-1900",
        "unit_id": data.get("unit_id"),
        "correlation_id": None,
        "data": data,
    }
    env.update(over)
    return env


def unit_event(unit: Unit, clock: FixedClock) -> tuple[str, bytes]:
    """A `unit.upserted` as intake publishes it: (event_id, body)."""
    env = make_event("unit.upserted", unit, source="intake", occurred_at=clock.now())
    return str(env.event_id), env.model_dump_json().encode()


def as_json(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()

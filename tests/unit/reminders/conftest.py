"""The default data set (read from the files the set-up loads) and builders with random ids."""

from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from lhpn_shared.clock import LOCAL_TZ
from lhpn_shared.contracts.plans import Plan
from lhpn_shared.contracts.units import Unit, UnitLevel, UnitTree
from reminders.domain.obligations import Obligation, obligation_id_for

DATA = Path(__file__).resolve().parents[3] / "services" / "intake" / "intake" / "data"


def vn(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """An instant in Asia/Ho_Chi_Minh time."""
    return datetime(year, month, day, hour, minute, tzinfo=LOCAL_TZ)


@pytest.fixture(scope="session")
def default_plan() -> Plan:
    return Plan.model_validate(json.loads((DATA / "plan-PY-2021-460.json").read_text("utf-8")))


@pytest.fixture(scope="session")
def phu_yen_units() -> UnitTree:
    with (DATA / "phu-yen-2021-units.csv").open(encoding="utf-8", newline="") as f:
        rows = [{k: (v or None) for k, v in row.items()} for row in csv.DictReader(f)]
    return UnitTree(Unit.model_validate(row) for row in rows)


def _random_id() -> str:
    return uuid.uuid4().hex[:8]


def _make_obligation(**overrides: Any) -> Obligation:
    fields: dict[str, Any] = {
        "plan_id": f"PLAN-{_random_id()}",
        "report_type": "monthly",
        "period": "2021-03",
        "unit_id": f"U{_random_id()}",
        "unit_level": UnitLevel.commune,
        "due_at": vn(2021, 3, 16),
        "recipient_unit_id": f"P{_random_id()}",
    }
    fields.update(overrides)
    fields.setdefault(
        "obligation_id",
        obligation_id_for(
            fields["plan_id"], fields["report_type"], fields["period"], fields["unit_id"]
        ),
    )
    return Obligation(**fields)


def _make_unit(**overrides: Any) -> Unit:
    fields: dict[str, Any] = {
        "unit_id": f"U{_random_id()}",
        "name": "Xã Hòa Kiến",
        "kind": "xã",
        "level": UnitLevel.commune,
    }
    fields.update(overrides)
    return Unit(**fields)


@pytest.fixture
def make_obligation() -> Callable[..., Obligation]:
    """`make_obligation(unit_id=..., due_at=...)`: an obligation with random ids otherwise."""
    return _make_obligation


@pytest.fixture
def make_unit() -> Callable[..., Unit]:
    """`make_unit(level=..., parent_id=...)`: a unit with a random id otherwise."""
    return _make_unit

"""A merge and a split through intake's API reach cases, reminders and aggregation within 2
seconds, and replaying the event stream (shuffled, every event twice) into fresh copies of those
services gives the same state."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from aggregation.app import create_app as aggregation_app
from aggregation.errors import NotFound
from aggregation.settings import AggregationSettings
from cases.app import create_app as cases_app
from cases.settings import CasesSettings
from intake.app import create_app as intake_app
from intake.settings import IntakeSettings
from lhpn_shared.broker import TOPOLOGY
from lhpn_shared.clock import LOCAL_TZ, FixedClock
from reminders.app import create_app as reminders_app
from reminders.settings import RemindersSettings
from tests.support.amqp import EventListener, publish_raw, purge_queues
from tests.support.http import eventually, login, running
from tests.support.infra import DevMongo, RabbitVhost

pytestmark = pytest.mark.integration

JULY = "2021-07-01"
CASE_KEY = base64.b64encode(os.urandom(32)).decode()


def commune(unit_id: str, name: str) -> dict[str, str]:
    return {
        "unit_id": unit_id,
        "name": name,
        "kind": "phường",
        "level": "commune",
        "parent_id": "555",
    }


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with running(app) as client:

        async def ready() -> bool:
            return (await client.get("/readyz")).status_code == 200

        await eventually(ready, timeout=30)
        yield client


async def rates(app: Any, period: str) -> dict[str, Any] | None:
    """Aggregation's monthly reporting rates of Tuy Hoà (555) for a period, or None while it does
    not know the unit yet."""
    svc = getattr(app.state, "aggregation", None)
    if svc is None:
        return None
    try:
        answer = await svc.reporting_rates("monthly", period, "555", None, list_limit=1000)
    except NotFound:  # until the unit tree and the plan have arrived
        return None
    found: dict[str, Any] = answer.model_dump(mode="json")
    return found


async def expected_in_july(app: Any) -> set[str] | None:
    """The communes of Tuy Hoà aggregation expects a July monthly report from (none has sent
    one, so every expected unit is missing), or None while it cannot answer."""
    answer = await rates(app, "2021-07")
    return None if answer is None else {u["unit_id"] for u in answer["missing"]}


async def aggregation_state(app: Any) -> Any:
    return [await rates(app, "2021-06"), await rates(app, "2021-07")]


async def cases_state(app: Any) -> dict[str, Any]:
    tree = await app.state.cases.tree()
    return {uid: u.model_dump(mode="json") for uid, u in tree.units.items()}


async def reminders_state(app: Any) -> dict[str, Any]:
    svc = app.state.reminders
    await svc.load_reference_data()
    units = {uid: u.model_dump(mode="json") for uid, u in svc.tree.units.items()}
    found = svc.store.obligations.find({}, {"due_at": 1, "recipient_unit_id": 1, "unit_id": 1})
    obligations = sorted([(d["_id"], d["recipient_unit_id"]) async for d in found])
    return {"units": units, "obligations": obligations}


@pytest.mark.timeout(300)
async def test_a_merge_and_a_split_reach_every_service_within_2_seconds_and_replay_alike(
    devmongo: DevMongo, rabbit: RabbitVhost
) -> None:
    await purge_queues(rabbit.url, *TOPOLOGY, *(f"{q}.dlq" for q in TOPOLOGY))
    run = uuid.uuid4().hex[:6]
    common: dict[str, Any] = {
        "mongo_url": devmongo.url,
        "relay_idle_seconds": 0.2,
        "mongo_timeout_ms": 5000,  # a loaded 2-core machine: no pool pauses mid-test
    }
    clock = FixedClock(datetime(2021, 8, 2, 9, 0, tzinfo=LOCAL_TZ))
    intake = intake_app(
        IntakeSettings(**common, rabbit_url=rabbit.url_for("intake"), mongo_db=f"intake_{run}"),
        clock,
    )

    def cases(db: str) -> Any:
        settings = CasesSettings(
            **common, rabbit_url=rabbit.url_for("cases"), mongo_db=db, case_keys=f"k:{CASE_KEY}"
        )
        return cases_app(settings, clock)

    def reminders(db: str) -> Any:
        settings = RemindersSettings(
            **common,
            rabbit_url=rabbit.url_for("reminders"),
            mongo_db=db,
            sweep_interval_seconds=0,
            smtp_port=1,
        )
        return reminders_app(settings, clock)

    def aggregation(db: str) -> Any:
        settings = AggregationSettings(
            **common, rabbit_url=rabbit.url_for("aggregation"), mongo_db=db
        )
        return aggregation_app(settings, clock)

    first_cases, first_reminders = cases(f"cases_{run}"), reminders(f"reminders_{run}")
    first_aggregation = aggregation(f"aggregation_{run}")
    async with (
        EventListener(rabbit.url, keys=("unit.upserted.v1", "plan.published.v1")) as stream,
        serving(first_cases),
        serving(first_reminders) as rem_client,
        serving(first_aggregation),
        serving(intake) as client,
    ):
        admin = await login(client, "admin", "admin")
        n_default = len((await client.get("/api/v1/units", headers=admin)).json()["items"])

        async def default_data_everywhere() -> bool:
            tree = await first_cases.state.cases.tree()
            rem_tree = first_reminders.state.reminders.tree
            in_aggregation = await expected_in_july(first_aggregation)
            return (
                len(tree.units) == n_default
                and len(rem_tree.units) == n_default
                and in_aggregation is not None
                and {"22015", "22018", "22024"} <= in_aggregation
            )

        await eventually(default_data_everywhere, timeout=60)

        merge = await client.post(
            "/api/v1/units/merge",
            json={
                "effective_on": JULY,
                "unit_ids": ["22015", "22018"],
                "new_unit": commune("M1", "Phường Hợp Nhất"),
            },
            headers=admin,
        )
        split = await client.post(
            "/api/v1/units/22024/split",
            json={
                "effective_on": JULY,
                "new_units": [commune("S1", "Phường Tách Một"), commune("S2", "Phường Tách Hai")],
            },
            headers=admin,
        )
        assert (merge.status_code, split.status_code) == (201, 201), merge.text + split.text
        changed = {"22015", "22018", "M1", "22024", "S1", "S2"}
        started = time.monotonic()  # both changes are committed: their events are on the way

        async def seen_everywhere() -> bool:
            intake_tree = await client.get(
                "/api/v1/units", params={"as_of": JULY, "unit_id": "555"}, headers=admin
            )
            in_intake = {u["unit_id"] for u in intake_tree.json()["items"]}
            cases_tree = await first_cases.state.cases.tree()
            rem_tree = first_reminders.state.reminders.tree
            obligations = await rem_client.get(
                "/api/v1/obligations",
                params={"unit_id": "M1", "report_type": "monthly"},
                headers={"Authorization": admin["Authorization"]},
            )
            in_aggregation = await expected_in_july(first_aggregation) or set()
            return (
                {"M1", "S1", "S2"} <= in_intake
                and not ({"22015", "22018", "22024"} & in_intake)
                and all(u in cases_tree and cases_tree.units[u].revision >= 1 for u in changed)
                and cases_tree.units["22024"].valid_to is not None
                and all(u in rem_tree for u in changed)
                and rem_tree.units["22015"].valid_to is not None
                and obligations.status_code == 200
                and len(obligations.json()["items"]) == 6  # July to December
                and {"M1", "S1", "S2"} <= in_aggregation
                and not ({"22015", "22018", "22024"} & in_aggregation)
            )

        await eventually(seen_everywhere, timeout=2.0)
        elapsed = time.monotonic() - started
        print(f"merge + split seen by every service after {elapsed:.2f} s")
        # a commune merged away owes no report due after it ended
        gone = await rem_client.get(
            "/api/v1/obligations",
            params={"unit_id": "22015", "report_type": "monthly"},
            headers=admin,
        )
        assert [o["period"] for o in gone.json()["items"]] == [f"2021-{m:02d}" for m in range(1, 7)]

        expected_cases = await cases_state(first_cases)
        expected_reminders = await reminders_state(first_reminders)
        expected_aggregation = await aggregation_state(first_aggregation)
        captured = stream.bodies()

    # ---- replay: fresh copies, the whole stream shuffled and every event twice ------------
    replay = captured * 2
    random.Random(7).shuffle(replay)
    fresh_cases, fresh_reminders = cases(f"cases_replay_{run}"), reminders(f"rem_replay_{run}")
    fresh_aggregation = aggregation(f"agg_replay_{run}")
    async with (
        serving(fresh_cases),
        serving(fresh_reminders),
        serving(fresh_aggregation),
    ):
        for body in replay:
            key = f"{body['type']}.v{body['version']}"
            raw = json.dumps(body).encode()
            # as intake, the owner of these events (consumers check the publisher)
            intake_url = rabbit.url_for("intake")
            await publish_raw(intake_url, "lhpn.events", key, raw, body["event_id"])

        async def caught_up() -> bool:
            return (
                await cases_state(fresh_cases) == expected_cases
                and await reminders_state(fresh_reminders) == expected_reminders
                and await aggregation_state(fresh_aggregation) == expected_aggregation
            )

        await eventually(caught_up, timeout=60, interval=0.5)

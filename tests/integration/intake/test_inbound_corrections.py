"""An inbound correction (a higher revision of a known activity) is applied; an older one not."""

from __future__ import annotations

import httpx

from tests.integration.intake.test_activities import make_activity
from tests.integration.intake.test_inbound import envelope


async def test_a_higher_revision_from_another_system_corrects_and_a_lower_one_is_ignored(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    first = make_activity(revision=1)
    assert (await client.post("/api/v1/events", json=envelope(first), headers=admin)).json()[
        "status"
    ] == "accepted"
    corrected = {**first, "revision": 2, "metrics": {"sessions": 4, "participants": 120}}
    r = await client.post("/api/v1/events", json=envelope(corrected), headers=admin)
    assert r.json()["status"] == "accepted"
    stale = {**first, "revision": 1, "title": "Bản cũ đến muộn"}
    r = await client.post("/api/v1/events", json=envelope(stale), headers=admin)
    assert r.json()["status"] == "duplicate"
    got = (await client.get(f"/api/v1/activities/{first['activity_id']}", headers=admin)).json()
    assert got["revision"] == 2
    assert got["metrics"] == {"sessions": 4, "participants": 120}
    assert got["title"] == first["title"]

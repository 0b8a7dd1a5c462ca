"""An inbound correction (a higher revision of a known activity) is applied; an older one not."""

from __future__ import annotations

import asyncio

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


async def test_revisions_handled_newest_first_or_all_at_once_leave_the_newest(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    """Found by the fault suite: a consumer handles up to its prefetch of messages at once, so
    two corrections of one activity may be handled in either order or together; intake used
    to number them itself (stored + 1), and the older one, applied second, won."""
    base = make_activity()
    revisions = [
        {**base, "revision": n, "metrics": {"sessions": n, "participants": 10 * n}}
        for n in (1, 2, 3, 4)
    ]

    async def send(activity: dict[str, object]) -> str:
        r = await client.post("/api/v1/events", json=envelope(activity), headers=admin)
        assert r.status_code == 202, r.text
        return str(r.json()["status"])

    # the newest first: the older ones after it are stale
    assert await send(revisions[2]) == "accepted"
    assert [await send(revisions[1]), await send(revisions[0])] == ["duplicate", "duplicate"]
    got = (await client.get(f"/api/v1/activities/{base['activity_id']}", headers=admin)).json()
    assert (got["revision"], got["metrics"]["sessions"]) == (3, 3)

    # several at once, the newest among them: it stands, whatever order they are written in
    statuses = await asyncio.gather(*(send(r) for r in [revisions[1], revisions[3], revisions[2]]))
    assert statuses.count("accepted") == 1
    got = (await client.get(f"/api/v1/activities/{base['activity_id']}", headers=admin)).json()
    assert (got["revision"], got["metrics"]["sessions"]) == (4, 4)


async def test_a_void_handled_together_with_a_correction_of_the_same_activity_voids_it(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    """Found by the fault suite (seed 108232): the void read revision 1, a correction wrote
    revision 2 before the void's write, and the void — guarded on revision 1 — was refused as
    'edited by someone else' and dead-lettered. A void from another system applies to whatever
    revision is stored when it is written."""
    pairs = []
    for _ in range(12):
        first = make_activity(revision=1)
        r = await client.post("/api/v1/events", json=envelope(first), headers=admin)
        assert r.status_code == 202, r.text
        corrected = {**first, "revision": 2, "metrics": {"sessions": 3, "participants": 90}}
        void = {
            "activity_id": first["activity_id"],
            "unit_id": first["unit_id"],
            "revision": 3,
            "voided_at": "2021-03-06T09:00:00+07:00",
            "reason": "nhập trùng",
        }
        pairs.append((first, corrected, void))

    async def send(body: dict[str, object]) -> httpx.Response:
        return await client.post("/api/v1/events", json=body, headers=admin)

    # each pair sent at once, in both orders (which one reads first depends on the database)
    answers = await asyncio.gather(
        *(
            send(x)
            for n, (_, corrected, void) in enumerate(pairs)
            for x in (
                (envelope(corrected), envelope(void, type="activity.voided"))
                if n % 2
                else (envelope(void, type="activity.voided"), envelope(corrected))
            )
        ),
    )
    assert [a.status_code for a in answers] == [202] * len(answers), [
        a.text for a in answers if a.status_code != 202
    ]
    for first, _, _ in pairs:
        got = await client.get(f"/api/v1/activities/{first['activity_id']}", headers=admin)
        assert got.json()["voided"] is True, got.text

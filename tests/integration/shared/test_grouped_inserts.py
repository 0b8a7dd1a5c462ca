"""`GroupedInserts` against the development database: concurrent writers share one command, and
a duplicate among them is refused to its own writer only (the index DevMongo reports for it is
the one of the document that failed)."""

from __future__ import annotations

import asyncio

import pytest
from pymongo.errors import DuplicateKeyError

from lhpn_shared.mongo import GroupedInserts, database, make_client
from lhpn_shared.settings import ServiceSettings
from tests.support.infra import DevMongo

pytestmark = pytest.mark.integration


async def test_concurrent_writers_share_commands_and_only_the_duplicate_is_refused(
    devmongo: DevMongo, db_name: str
) -> None:
    client = make_client(ServiceSettings(mongo_url=devmongo.url))
    coll = database(client, db_name)["activities"]
    await coll.insert_one({"_id": "a-07", "title": "already there"})
    inserts = GroupedInserts(coll)
    ids = [f"a-{n:02d}" for n in range(20)]
    results = await asyncio.gather(
        *(inserts.insert_one({"_id": i, "title": f"new {i}"}) for i in ids),
        return_exceptions=True,
    )
    refused = [i for i, r in zip(ids, results, strict=True) if r is not None]
    assert refused == ["a-07"]
    assert isinstance(results[7], DuplicateKeyError)
    assert inserts.batches < len(ids)
    stored = {d["_id"]: d["title"] async for d in coll.find({})}
    assert stored == {i: "already there" if i == "a-07" else f"new {i}" for i in ids}
    await client.close()

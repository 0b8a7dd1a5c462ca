"""The development database's launcher starts a query that names `_id` beside other fields from
the `_id` index (deploy/devmongo/DevMongo.java): every such query still answers what MongoDB
answers, the guarded writes every service makes included, before and after a restart (when the
collections are opened again from the file)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pymongo import ASCENDING, DESCENDING, ReturnDocument, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from lhpn_shared.idempotency import upsert_if_newer
from lhpn_shared.mongo import Doc, database, make_client
from lhpn_shared.settings import ServiceSettings
from tests.support.infra import DevMongo, free_port

pytestmark = pytest.mark.integration


async def _answers(coll: AsyncCollection[Doc]) -> None:
    assert (await coll.find_one({"_id": "u5", "revision": 1}) or {}).get("p") == 5
    assert await coll.find_one({"_id": "u5", "revision": 2}) is None
    assert await coll.find_one({"_id": "missing", "revision": 1}) is None
    found = coll.find({"_id": {"$in": ["u1", "u2", "u3", "u9"]}, "p": {"$ne": 2}}, {"p": 1})
    # u2 and u9 have p == 2
    assert [d async for d in found.sort("_id", DESCENDING)] == [
        {"_id": "u3", "p": 3},
        {"_id": "u1", "p": 1},
    ]
    assert await coll.count_documents({"_id": {"$in": ["u1", "u2"]}, "revision": 1}) == 2
    # what the index cannot look up as keys is matched as before: patterns, operators, $natural
    pattern = {"_id": {"$in": [re.compile("^u2")]}, "p": {"$gte": 0}}
    assert sorted([d["_id"] async for d in coll.find(pattern)]) == ["u2"] + [
        f"u{i}" for i in range(20, 30)
    ]
    assert await coll.count_documents({"_id": {"$gt": "u8"}, "revision": 1}) == 1  # u9
    newest = coll.find({"_id": {"$in": ["u1", "u3"]}, "revision": 1}).sort("$natural", -1)
    assert [d["_id"] async for d in newest] == ["u3", "u1"]
    # the guarded writes: a lower revision is refused (the upsert's insert collides)
    assert not await upsert_if_newer(coll, "u5", 1, {"p": 50})
    assert await upsert_if_newer(coll, "u5", 2, {"p": 50})
    assert await upsert_if_newer(coll, "new", 1, {"p": 0})
    with pytest.raises(DuplicateKeyError):
        await coll.update_one({"_id": "u6", "revision": {"$lt": 1}}, {"$set": {}}, upsert=True)
    result = await coll.bulk_write(
        [UpdateOne({"_id": f"u{i}", "revision": 1}, {"$set": {"revision": 3}}) for i in range(10)],
        ordered=False,
    )
    assert result.matched_count == 9  # u5 is at revision 2 now
    changed = await coll.find_one_and_update(
        {"_id": "u7", "revision": 3},
        {"$set": {"p": 70}},
        return_document=ReturnDocument.AFTER,
    )
    assert changed is not None and changed["p"] == 70
    assert (await coll.delete_one({"_id": "u8", "revision": 1})).deleted_count == 0
    assert (await coll.delete_one({"_id": "u8", "revision": 3})).deleted_count == 1
    stored = {d["_id"]: (d["revision"], d["p"]) async for d in coll.find({}).sort("_id", ASCENDING)}
    assert stored["u5"] == (2, 50) and stored["new"] == (1, 0) and stored["u7"] == (3, 70)
    assert "u8" not in stored and stored["u20"] == (1, 20 % 7)
    assert len(stored) == 30


async def test_queries_naming_id_and_more_answer_as_mongodb_before_and_after_a_restart(
    tmp_path: Path,
) -> None:
    server = DevMongo(port=free_port(), data_dir=tmp_path / "db")
    server.start()
    try:
        client = make_client(ServiceSettings(mongo_url=server.url))
        coll = database(client, "t_devmongo")["units"]
        await coll.insert_many([{"_id": f"u{i}", "revision": 1, "p": i % 7} for i in range(30)])
        await _answers(coll)
        await client.close()
    finally:
        server.stop()

    server.start()  # the same file: the collections are opened again, their indexes rebuilt
    try:
        client = make_client(ServiceSettings(mongo_url=server.url))
        coll = database(client, "t_devmongo")["units"]
        await coll.delete_many({})
        await coll.insert_many([{"_id": f"u{i}", "revision": 1, "p": i % 7} for i in range(30)])
        await _answers(coll)
        with pytest.raises(DuplicateKeyError):  # the _id index is still unique
            await coll.insert_one({"_id": "u1", "revision": 9})
        await client.close()
    finally:
        server.stop()

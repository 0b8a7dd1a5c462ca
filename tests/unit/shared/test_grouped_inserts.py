"""`GroupedInserts`: concurrent writers share one `insert_many`, each still waiting for its own
document and getting its own outcome (a fake collection: no database; the same on DevMongo in
tests/integration/shared/test_grouped_inserts.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pymongo.errors import AutoReconnect, BulkWriteError, DuplicateKeyError, WriteError

from lhpn_shared.mongo import GroupedInserts


class SlowCollection:
    """Takes its time per command, as a database committing each write does; refuses a
    document whose `_id` it holds, as a unique index does (unordered: the others go in)."""

    def __init__(self) -> None:
        self.stored: dict[Any, dict[str, Any]] = {}
        self.commands: list[list[Any]] = []
        self.down = False
        self.refuse: set[Any] = set()  # ids refused with another error than a duplicate

    async def insert_many(self, docs: list[dict[str, Any]], ordered: bool = True) -> None:
        assert ordered is False
        self.commands.append([d["_id"] for d in docs])
        await asyncio.sleep(0.02)
        if self.down:
            raise AutoReconnect("database gone")
        errors = []
        for i, d in enumerate(docs):
            if d["_id"] in self.stored:
                errors.append({"index": i, "code": 11000, "errmsg": "E11000 duplicate key"})
            elif d["_id"] in self.refuse:
                errors.append({"index": i, "code": 121, "errmsg": "Document failed validation"})
            else:
                self.stored[d["_id"]] = d
        if errors:
            raise BulkWriteError({"writeErrors": errors, "nInserted": len(docs) - len(errors)})


def grouped() -> tuple[SlowCollection, GroupedInserts]:
    coll = SlowCollection()
    return coll, GroupedInserts(coll)  # type: ignore[arg-type]


async def test_documents_written_at_the_same_time_share_commands_and_every_one_is_stored() -> None:
    coll, inserts = grouped()
    first = asyncio.create_task(inserts.insert_one({"_id": 0}))
    await asyncio.sleep(0.001)  # its command is under way
    await asyncio.gather(first, *(inserts.insert_one({"_id": n}) for n in range(1, 50)))
    assert sorted(coll.stored) == list(range(50))
    assert coll.commands[0] == [0]  # the first went alone, without waiting for company
    assert coll.commands[1] == list(range(1, 50))  # then all that arrived while it was written
    assert inserts.batches == 2


async def test_a_duplicate_fails_only_its_own_writer_and_the_rest_of_its_batch_is_stored() -> None:
    coll, inserts = grouped()
    await inserts.insert_one({"_id": "taken"})
    results = await asyncio.gather(
        *(inserts.insert_one({"_id": i}) for i in ("a", "taken", "b")), return_exceptions=True
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], DuplicateKeyError)
    assert results[1].code == 11000
    assert set(coll.stored) == {"taken", "a", "b"}


async def test_another_refusal_of_one_document_is_a_write_error_of_its_writer_only() -> None:
    coll, inserts = grouped()
    coll.refuse.add("bad")
    results = await asyncio.gather(
        *(inserts.insert_one({"_id": i}) for i in ("a", "bad", "b")), return_exceptions=True
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], WriteError) and not isinstance(results[1], DuplicateKeyError)
    assert results[1].code == 121


async def test_when_the_database_fails_every_writer_of_the_batch_sees_the_error() -> None:
    coll, inserts = grouped()
    coll.down = True
    results = await asyncio.gather(
        *(inserts.insert_one({"_id": n}) for n in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, AutoReconnect) for r in results)
    coll.down = False
    await inserts.insert_one({"_id": 9})  # and it works again afterwards
    assert list(coll.stored) == [9]


async def test_a_cancelled_writer_does_not_cancel_the_write_of_the_others() -> None:
    coll, inserts = grouped()
    first = asyncio.create_task(inserts.insert_one({"_id": "first"}))
    await asyncio.sleep(0)  # its batch is being written
    others = [asyncio.create_task(inserts.insert_one({"_id": n})) for n in range(3)]
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.gather(*others)
    # its own document was already on its way: stored, as if it had not been cancelled
    assert set(coll.stored) == {"first", 0, 1, 2}


async def test_a_write_concern_error_is_an_error_for_every_writer_of_the_batch() -> None:
    class Unconfirmed(SlowCollection):
        async def insert_many(self, docs: list[dict[str, Any]], ordered: bool = True) -> None:
            await super().insert_many(docs, ordered)
            raise BulkWriteError({"writeErrors": [], "writeConcernErrors": [{"code": 64}]})

    inserts = GroupedInserts(Unconfirmed())  # type: ignore[arg-type]
    results = await asyncio.gather(
        *(inserts.insert_one({"_id": n}) for n in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, BulkWriteError) for r in results)


async def test_a_refusal_it_cannot_read_fails_its_writers_and_the_next_ones_are_written() -> None:
    coll, inserts = grouped()

    async def odd_reply(docs: list[dict[str, Any]], ordered: bool = True) -> None:
        coll.insert_many = real  # type: ignore[method-assign]
        raise BulkWriteError({"writeErrors": [{"code": 11000}]})  # no "index"

    real = coll.insert_many
    coll.insert_many = odd_reply  # type: ignore[method-assign]
    results = await asyncio.wait_for(
        asyncio.gather(*(inserts.insert_one({"_id": n}) for n in range(3)), return_exceptions=True),
        timeout=5,
    )
    assert all(isinstance(r, KeyError) for r in results), results
    await asyncio.wait_for(inserts.insert_one({"_id": 9}), timeout=5)
    assert coll.stored == {9: {"_id": 9}}

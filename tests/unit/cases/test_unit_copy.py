"""The cases service's cached unit tree: a load that a unit's write overtook is not kept."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

from pymongo.asynchronous.collection import AsyncCollection

from cases.units import UnitCopy
from lhpn_shared.contracts.units import Unit
from lhpn_shared.mongo import Doc

PROVINCE = Unit(unit_id="54", name="Tỉnh", kind="tỉnh", level="province")
DISTRICT = Unit(unit_id="555", name="TP", kind="thành phố", level="district", parent_id="54")


class Units:
    """In memory, with a `find` that can be held after it took its snapshot of the documents
    (as a cursor that has read its batch but not yet returned it)."""

    def __init__(self) -> None:
        self.docs: dict[str, Doc] = {}
        self.hold: asyncio.Event | None = None
        self.snapshot_taken = asyncio.Event()

    def find(self, _filter: Doc) -> AsyncIterator[Doc]:
        async def read() -> AsyncIterator[Doc]:
            snapshot = [dict(d) for d in self.docs.values()]
            self.snapshot_taken.set()
            if self.hold is not None:
                await self.hold.wait()
            for d in snapshot:
                yield d

        return read()

    async def update_one(self, query: Doc, update: Doc, upsert: bool = False) -> None:
        key = query["_id"]
        stored = self.docs.get(key)
        if stored is None or stored["revision"] < query["revision"]["$lt"]:
            self.docs[key] = {"_id": key, **update["$set"]}


def copy_of(units: Units) -> UnitCopy:
    return UnitCopy(cast(AsyncCollection[Doc], cast(Any, units)), refresh_seconds=3600)


async def test_a_load_overtaken_by_a_unit_s_write_is_not_kept_for_the_refresh_time() -> None:
    units = Units()
    copy = copy_of(units)
    await copy.apply_unit(PROVINCE)
    units.hold = asyncio.Event()
    loading = asyncio.create_task(copy.tree())
    await units.snapshot_taken.wait()  # the load has read the units: the district is not there
    await copy.apply_unit(DISTRICT)
    units.hold.set()
    overtaken = await loading
    assert "555" not in overtaken  # what it read, used by its own caller once
    units.hold = None
    assert "555" in await copy.tree()  # the next caller reads again, without waiting an hour
    assert "555" in copy.last


async def test_a_load_no_write_overtook_is_kept() -> None:
    units = Units()
    copy = copy_of(units)
    await copy.apply_unit(PROVINCE)
    first = await copy.tree()
    units.docs.clear()  # another instance's change: seen only after the refresh time
    assert await copy.tree() is first
    assert copy.last is first


async def test_a_load_that_waited_for_an_overtaken_one_reads_again_and_last_never_goes_back() -> (
    None
):
    units = Units()
    copy = copy_of(units)
    await copy.apply_unit(PROVINCE)
    held = units.hold = asyncio.Event()
    first = asyncio.create_task(copy.tree())  # A: has read, and is held
    await units.snapshot_taken.wait()
    await copy.apply_unit(DISTRICT)  # overtakes A
    units.hold = None  # a second load would read at once…
    second = asyncio.create_task(copy.tree())  # …but B waits for A, then reads again
    for _ in range(5):
        await asyncio.sleep(0)
    held.set()
    a, b = await first, await second
    assert "555" not in a and "555" in b
    assert "555" in copy.last  # B's tree: A, finished first, did not come back over it
    assert await copy.tree() is b  # B was kept: no write overtook it

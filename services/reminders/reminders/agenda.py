"""The agenda: what a sweep may know without reading every obligation and case.

A sweep that finds nothing due still had to look: `next_step_at <= as_of` is a range query,
which MongoDB serves from the `next_step_at` index but DevMongo (mongo-java-server: only unique
indexes, equality and `$in`) answers by reading the whole collection — about 2 s for the
country's 137,700 obligations, at every sweep (by default every minute). The agenda is one
`meta` document that lets such a sweep stop after one read by `_id`:

- `earliest`: no step strictly before this instant is left unhandled (absent: no subject has a
  step left at all);
- `change`: a random token, replaced by every writer of a `next_step_at` (other than a sweep's
  own advance) before and after it writes;
- `scanned` / `scanned_as_of`: the `change` token the last full sweep read before it looked,
  and its as-of instant.

The agenda is trusted only while `change == scanned` (no writer since that sweep looked) and
for `RESCAN_AFTER` past that sweep's as-of; otherwise the sweep reads the subjects as before.

Writers (`scheduling`) replace the token before and after they write. Before: a sweep that
starts once a step is stored finds the agenda untrusted, and looks. After: a sweep that was
looking while the step was written (its reads may have missed it) records what it found by
compare-and-swap on the token it read before looking, so either nothing is recorded or what it
recorded is untrusted as soon as the writer is done; the next sweep looks. A writer that dies
between its write and its second mark, while a sweep was looking, can leave a step the agenda
does not know: the sweep that looks at the latest `RESCAN_AFTER` later finds it (late, not
lost; a redelivered case event marks again).

A sweep's own advance does not mark: it only moves subjects past steps it handled, and what it
moves is in what it records. (Its re-planning after a policy change does, as any writer.)
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from lhpn_shared.clock import ensure_aware, to_millis
from lhpn_shared.mongo import Doc

AGENDA_ID = "agenda"
RESCAN_AFTER = timedelta(hours=1)
"""A sweep reads every subject at least this often (of as-of time), whatever the agenda says."""


@dataclass(frozen=True)
class AgendaState:
    change: str | None = None
    earliest: datetime | None = None
    scanned: str | None = None
    scanned_as_of: datetime | None = None

    def nothing_due(self, as_of: datetime) -> bool:
        """Whether a sweep as of `as_of` can know, from this alone, that no step is due."""
        if self.change is None or self.scanned != self.change or self.scanned_as_of is None:
            return False  # never looked, or written since it looked
        if not timedelta(0) <= as_of - self.scanned_as_of < RESCAN_AFTER:
            return False  # an hour since it looked, or a look as of a later instant (a sweep
            # asked for a future as-of): only a sweep that reads can tell
        return self.earliest is None or self.earliest > as_of


def earliest_of(instants: Iterable[datetime | None]) -> datetime | None:
    return min((at for at in instants if at is not None), default=None)


class Agenda:
    def __init__(self, meta: AsyncCollection[Doc]) -> None:
        self.meta = meta

    async def read(self) -> AgendaState:
        doc = await self.meta.find_one({"_id": AGENDA_ID})
        if doc is None:
            return AgendaState()
        return AgendaState(
            change=doc.get("change"),
            earliest=_aware(doc.get("earliest")),
            scanned=doc.get("scanned"),
            scanned_as_of=_aware(doc.get("scanned_as_of")),
        )

    @asynccontextmanager
    async def scheduling(self, instants: Iterable[datetime | None]) -> AsyncIterator[None]:
        """Around a write that stores these `next_step_at` values (None: no step): marks the
        agenda before, and once it is done (even if it failed halfway)."""
        if earliest_of(instants) is None:  # removes steps only: what the agenda says stays true
            yield
            return
        await self._mark()
        try:
            yield
        finally:
            await self._mark()

    async def start(self) -> AgendaState:
        """The state a sweep reads before it looks (with a token to swap, even the first)."""
        state = await self.read()
        if state.change is None:
            await self._mark()
            state = await self.read()
        return state

    async def record(self, read: AgendaState, earliest: datetime | None, as_of: datetime) -> bool:
        """After a sweep as of `as_of` that read every subject: the first step left. Only if
        no writer marked since `read` (else the next sweep looks again)."""
        update: Doc = {"$set": {"scanned": read.change, "scanned_as_of": to_millis(as_of)}}
        if earliest is None:
            update["$unset"] = {"earliest": ""}
        else:
            update["$set"]["earliest"] = to_millis(earliest)
        result = await self.meta.update_one({"_id": AGENDA_ID, "change": read.change}, update)
        return result.matched_count == 1

    async def _mark(self) -> None:
        update = {"$set": {"change": uuid.uuid4().hex}}
        try:
            await self.meta.update_one({"_id": AGENDA_ID}, update, upsert=True)
        except DuplicateKeyError:  # another process created it at the same moment
            await self.meta.update_one({"_id": AGENDA_ID}, update, upsert=True)


def _aware(value: datetime | None) -> datetime | None:
    return ensure_aware(value) if value is not None else None

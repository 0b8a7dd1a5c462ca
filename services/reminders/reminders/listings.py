"""The lists the HTTP side shows, a page at a time in `_id` order: obligations with their
status as of now, and the send log (each send with its deliveries, one per channel)."""

from __future__ import annotations

from lhpn_shared.mongo import Doc

from .context import RemindersContext
from .domain.obligations import ObligationStatus
from .repository import obligation_status, status_query


async def list_obligations(
    ctx: RemindersContext,
    unit_ids: list[str] | None,
    *,
    report_type: str | None,
    period: str | None,
    status: ObligationStatus | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Doc], str | None]:
    """The status is as of now: an obligation is overdue from its due instant on, whether
    or not a sweep has run yet."""
    query: Doc = {}
    if unit_ids is not None:
        query["unit_id"] = {"$in": unit_ids}
    if report_type:
        query["report_type"] = report_type
    if period:
        query["period"] = period
    now = ctx.now()
    if status is not None:
        query.update(status_query(status, now))
    if cursor:
        query["_id"] = {"$gt": cursor}
    docs = await ctx.store.obligations.find(query, {"outbox": 0}).sort("_id", 1).to_list(limit + 1)
    more = len(docs) > limit
    docs = docs[:limit]
    for d in docs:
        d["status"] = obligation_status(d, now).value
    return docs, (docs[-1]["_id"] if more else None)


async def list_sends(
    ctx: RemindersContext, unit_ids: list[str] | None, *, limit: int, cursor: str | None
) -> tuple[list[Doc], str | None]:
    query: Doc = {}
    if unit_ids is not None:
        query["recipient_unit_id"] = {"$in": unit_ids}
    if cursor:
        query["_id"] = {"$gt": cursor}
    docs = await ctx.store.send_log.find(query, {"outbox": 0}).sort("_id", 1).to_list(limit + 1)
    more = len(docs) > limit
    docs = docs[:limit]
    return docs, (docs[-1]["_id"] if more else None)

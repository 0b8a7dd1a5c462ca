"""Reading a case and listing a unit's cases, as far as the caller may see them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

from lhpn_shared.auth import Principal
from lhpn_shared.contracts.cases import CaseKind, CaseStatus, CaseTopic
from lhpn_shared.http import FieldProblem

from .context import CaseContext
from .domain.access import Access, case_access
from .domain.succession import case_access_on, case_scope
from .errors import Forbidden, NotFound, refusal
from .models import CaseListItem, CaseOut
from .repository import case_from_doc
from .views import item, view


@dataclass(frozen=True)
class CaseFilter:
    unit_id: str | None = None
    kind: CaseKind | None = None
    topic: CaseTopic | None = None
    status: CaseStatus | None = None
    overdue: bool | None = None
    received_from: date | None = None
    received_to: date | None = None
    limit: int = 100
    cursor: str | None = None


async def read_case(ctx: CaseContext, case_id: UUID, caller: Principal) -> CaseOut:
    """The case. Its personal data only for staff of the union that holds it (its own, and
    those it is referred up to: `domain.visibility`), and every such read leaves an audit
    record before anything is returned; anyone else allowed near the case gets the facts and
    a notice saying the personal data is hidden."""
    case = await ctx.load(case_id)
    access = case_access_on(caller, case.unit_id, await ctx.tree(), ctx.today())
    if access is Access.none:
        await ctx.refuse(caller, case, "read", access)
    shown = view(ctx, case, caller)
    if shown.personal_data:
        await ctx.audit(caller, "read", case.case_id, case.unit_id, personal_data=True)
    return shown


async def list_cases(
    ctx: CaseContext, caller: Principal, flt: CaseFilter
) -> tuple[list[CaseListItem], str | None]:
    """Cases of a unit's subtree, newest first, facts only (never personal data)."""
    tree = await ctx.tree()
    root = flt.unit_id or caller.unit_id
    query: dict[str, Any] = {}
    if root is not None:
        if root not in tree:
            raise NotFound(f"Không có đơn vị mã '{root}'.")
        access = case_access(caller, root, tree)
        if access is Access.none:
            raise Forbidden(refusal(caller, root, access, listing=True))
        query["unit_id"] = {"$in": case_scope(root, tree, ctx.today())}
    elif not caller.is_admin:
        raise Forbidden(refusal(caller, None, Access.none, listing=True))
    for name in ("kind", "topic", "status"):
        value = getattr(flt, name)
        if value is not None:
            query[name] = value.value
    if flt.received_from or flt.received_to:
        query["received_on"] = {
            **({"$gte": flt.received_from.isoformat()} if flt.received_from else {}),
            **({"$lte": flt.received_to.isoformat()} if flt.received_to else {}),
        }
    now = ctx.now()
    clauses: list[dict[str, Any]] = []
    if flt.overdue is True:
        query["next_due_at"] = {"$lte": now}  # overdue from the due instant on
    elif flt.overdue is False:
        clauses.append({"$or": [{"next_due_at": None}, {"next_due_at": {"$gt": now}}]})
    if flt.cursor:
        received_on, after_id = _parse_cursor(flt.cursor)
        clauses.append(
            {
                "$or": [
                    {"received_on": {"$lt": received_on}},
                    {"received_on": received_on, "_id": {"$gt": after_id}},
                ]
            }
        )
    if clauses:
        query["$and"] = clauses
    docs = (
        await ctx.store.cases.find(query)
        .sort([("received_on", -1), ("_id", 1)])
        .to_list(flt.limit + 1)
    )
    cases = [case_from_doc(d) for d in docs[: flt.limit]]
    more = len(docs) > flt.limit
    cursor = f"{cases[-1].state.received_on.isoformat()}|{cases[-1].case_id}" if more else None
    return [item(c, now) for c in cases], cursor


def _parse_cursor(cursor: str) -> tuple[str, str]:
    received_on, _, case_id = cursor.partition("|")
    try:
        return date.fromisoformat(received_on).isoformat(), str(UUID(case_id))
    except ValueError:
        raise FieldProblem([(("cursor",), "Con trỏ trang không hợp lệ.")]) from None

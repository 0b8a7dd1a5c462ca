"""A unit's contacts, stored and read: the webhook URL checked to reach a public address and
its secret sealed on the way in (`contacts`), opened again for the sweeps and deliveries."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from lhpn_shared.http import FieldProblem
from lhpn_shared.mongo import Doc
from lhpn_shared.outbox import with_outbox

from .contacts import Contacts, contacts_doc, contacts_from_doc
from .context import BATCH, BY_ID_LIMIT, RemindersContext
from .delivery.addresses import RefusedAddress


async def set_contacts(
    ctx: RemindersContext,
    unit_id: str,
    contacts: Contacts,
    actor: str,
    audit: Callable[[], Sequence[Doc]] | None = None,
) -> Contacts:
    """Store a unit's contacts: a webhook URL only if it reaches a public address (422
    naming `webhook_url` otherwise), its secret sealed. `audit()`: the write's audit records,
    made once the address is checked (so that their instant is the write's) and stored in the
    same write (the relay moves them to the log)."""
    if contacts.webhook_url is not None:
        try:
            await ctx.guard.pin(contacts.webhook_url)
        except RefusedAddress as exc:
            raise FieldProblem([(("webhook_url",), exc.message)]) from None
    fields = contacts_doc(unit_id, contacts, ctx.secrets)
    update = {"$set": {**fields, "updated_at": ctx.now(), "updated_by": actor}}
    records = audit() if audit is not None else ()
    await ctx.store.contacts.update_one(
        {"_id": unit_id}, with_outbox(update, [], records) if records else update, upsert=True
    )
    if records:
        ctx.wake_relay()
    return contacts


async def contacts_of(ctx: RemindersContext, unit_ids: Iterable[str]) -> dict[str, Contacts]:
    ids = sorted(set(unit_ids))
    if not ids:
        return {}
    query: Doc = {"_id": {"$in": ids}} if len(ids) <= BY_ID_LIMIT else {}
    return {
        d["_id"]: contacts_from_doc(d, ctx.secrets)
        async for d in ctx.store.contacts.find(query, batch_size=BATCH)
    }

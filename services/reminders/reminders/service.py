"""Reminders' use cases for facts and queries behind one facade: the same functions serve AMQP,
HTTP and tests.

Each concern is its own module; this class only binds their functions to one context:
- `facts`: `handle(envelope)`: units, plans, reports and cases from `lhpn.events`, idempotent
  and order-tolerant (a lower revision never overwrites; a report that arrives before its plan
  or unit is kept and fulfils the obligation once it is derived);
- `obligation_sync`: obligations derived from plan × units, fulfilled by reports
  (`obligation.fulfilled` in the same document write);
- `unit_contacts`: contacts; `listings`: the obligation and notification lists;
- `context` (dependencies, the reminder policy in use, the copy of units and plans, event ids).

Sweeps are in `sweep.py`, deliveries in `dispatch.py`.
"""

from __future__ import annotations

from . import facts, listings, obligation_sync, unit_contacts
from .context import RemindersContext


class Reminders(RemindersContext):
    """Facts, obligations, contacts and lists. Each use case is its module's function, taking
    the context as its first argument, bound here as a method so that its signature is
    written once."""

    handle = facts.handle
    on_unit = facts.on_unit
    on_plan = facts.on_plan
    on_report = facts.on_report
    on_case = facts.on_case

    sync_obligations = obligation_sync.sync_obligations

    set_contacts = unit_contacts.set_contacts
    contacts_of = unit_contacts.contacts_of

    list_obligations = listings.list_obligations
    list_sends = listings.list_sends

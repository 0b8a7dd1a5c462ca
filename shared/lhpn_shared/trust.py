"""Who may have sent a message: checked on receipt, before any use case sees it.

RabbitMQ refuses a message whose `user_id` property is not the publisher's own user, so
`user_id` names the publisher reliably. Two admissions use it:

- `EventOwners` (queues on `lhpn.events`): an event type is accepted only from the broker user
  of the service that owns it (`contracts.owners.EVENT_OWNERS`, users `<prefix><service>`).
- `InboundGate` (queues on `lhpn.inbound`): the publisher must be a bound inbound system, the
  routing key among its binding's, and every unit the message names within its subtree. The
  use case then acts as that system's `Principal` (and checks stored entities itself).

A refusal raises `Reject`: `process_delivery` dead-letters the message with the reason.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from .broker import Reject
from .contracts.events import Envelope
from .contracts.owners import owner_of
from .contracts.units import UnitTree
from .inbound import InboundBindings
from .principal import Principal, Role


class Admission(Protocol):
    async def admit(self, envelope: Envelope, user_id: str | None) -> Principal:
        """The principal the message acts as, or `Reject` with the reason."""
        ...


def broker_principal(user_id: str) -> Principal:
    return Principal(subject=f"broker:{user_id}", role=Role.system)


class EventOwners:
    """`lhpn.events`: each event type only from its owning service's broker user."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def user_of(self, service: str) -> str:
        return f"{self.prefix}{service}"

    def refusal(self, event_type: str, user_id: str | None) -> str | None:
        """Why this publisher may not publish this type, or None when it may."""
        owner = owner_of(event_type)
        if owner is None:
            return f"no service owns event type {event_type}"
        expected = self.user_of(owner)
        if user_id != expected:
            sender = f"by '{user_id}'" if user_id else "without a user_id"
            return (
                f"{event_type} is published only by {expected} ({owner}); "
                f"this one was sent {sender}"
            )
        return None

    async def admit(self, envelope: Envelope, user_id: str | None) -> Principal:
        reason = self.refusal(envelope.type, user_id)
        if reason is not None:
            raise Reject(reason)
        assert user_id is not None
        return broker_principal(user_id)


TreeFor = Callable[[str], Awaitable[UnitTree]]
"""The consumer's unit tree, knowing `unit_id` (a service may reload it for a new unit)."""


class InboundGate:
    """`lhpn.inbound`: a bound system, one of its routing keys, units within its subtree."""

    def __init__(self, bindings: InboundBindings, tree_for: TreeFor) -> None:
        self._bindings = bindings
        self._tree_for = tree_for

    async def admit(self, envelope: Envelope, user_id: str | None) -> Principal:
        if not user_id:
            raise Reject("inbound message without a user_id: publish as your own broker user")
        binding = await self._bindings.lookup(user_id)
        if binding is None:
            raise Reject(f"'{user_id}' is not a bound inbound system")
        if envelope.routing_key not in binding.routing_keys:
            raise Reject(
                f"'{user_id}' may not send {envelope.routing_key} "
                f"(allowed: {', '.join(sorted(binding.routing_keys))})"
            )
        units = {u for u in (envelope.unit_id, envelope.data.get("unit_id")) if u is not None}
        if not units:
            raise Reject("inbound message names no unit_id")
        for unit_id in sorted(map(str, units)):
            tree = await self._tree_for(unit_id)
            if unit_id not in tree:
                raise Reject(f"unknown unit_id '{unit_id}'")
            if not tree.is_within(unit_id, binding.unit_id):
                raise Reject(
                    f"unit {unit_id} is outside the subtree of {binding.unit_id} "
                    f"that '{user_id}' is bound to"
                )
        return Principal(
            subject=f"broker:{user_id}",
            role=Role.system,
            unit_id=binding.unit_id,
            allowed_events=binding.routing_keys,
        )

"""Other systems on `lhpn.inbound`: each publishes as a RabbitMQ user of its own, bound (like an
API key) to a unit subtree and to the routing keys it may send.

`InboundBindings.lookup(broker_user)` answers that binding, or None for a user that is not an
inbound system. The bootstrap implementation reads the `INBOUND_SYSTEMS` setting:

    INBOUND_SYSTEMS=lhpn-sys-hotline:555:case.opened.v1|activity.recorded.v1,lhpn-sys-eoffice:54:report.submitted.v1

The broker enforces the same routing keys (topic permissions on `lhpn.inbound`, see
`broker_accounts`); the consumers check them again, with the unit subtree, which the broker
cannot see.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from .contracts.events import INBOUND_TYPES, routing_key

INBOUND_ROUTING_KEYS: frozenset[str] = frozenset(routing_key(t, v) for t, v in INBOUND_TYPES)
_USER = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
_UNIT = re.compile(r"^[A-Za-z0-9_.-]{1,50}$")


@dataclass(frozen=True)
class InboundBinding:
    broker_user: str
    unit_id: str
    """the root of the unit subtree the system may write for"""
    routing_keys: frozenset[str]
    """what it may publish on `lhpn.inbound`, e.g. `activity.recorded.v1`"""


class InboundBindings(Protocol):
    async def lookup(self, broker_user: str) -> InboundBinding | None: ...


class InboundSystemsError(ValueError):
    pass


def parse_inbound_systems(value: str) -> dict[str, InboundBinding]:
    """`user:unit_id:key|key,...` → {user: binding}; raises `InboundSystemsError` naming the
    entry at fault."""
    out: dict[str, InboundBinding] = {}
    for index, item in enumerate(filter(None, (p.strip() for p in value.split(","))), 1):
        parts = item.split(":")
        if len(parts) != 3:
            raise InboundSystemsError(
                f"INBOUND_SYSTEMS entry {index} must be 'broker_user:unit_id:key|key'"
            )
        user, unit_id, keys_text = (p.strip() for p in parts)
        if not _USER.match(user):
            raise InboundSystemsError(f"INBOUND_SYSTEMS entry {index}: bad broker user name")
        if not _UNIT.match(unit_id):
            raise InboundSystemsError(f"INBOUND_SYSTEMS entry {index}: bad unit_id")
        keys = frozenset(k.strip() for k in keys_text.split("|") if k.strip())
        unknown = sorted(keys - INBOUND_ROUTING_KEYS)
        if not keys or unknown:
            raise InboundSystemsError(
                f"INBOUND_SYSTEMS entry {index} ({user}): routing keys must be among "
                f"{', '.join(sorted(INBOUND_ROUTING_KEYS))}"
                + (f"; not {', '.join(unknown)}" if unknown else "")
            )
        if user in out:
            raise InboundSystemsError(f"INBOUND_SYSTEMS names {user} twice")
        out[user] = InboundBinding(user, unit_id, keys)
    return out


def format_inbound_systems(bindings: list[InboundBinding]) -> str:
    """The `INBOUND_SYSTEMS` value for these bindings (the inverse of the parser)."""
    return ",".join(
        f"{b.broker_user}:{b.unit_id}:{'|'.join(sorted(b.routing_keys))}" for b in bindings
    )


class SettingsInboundBindings:
    """The bootstrap bindings from `INBOUND_SYSTEMS` (like `API_KEYS`, only a bootstrap: the
    managed API-key records that name a broker user come on top)."""

    def __init__(self, bindings: dict[str, InboundBinding]) -> None:
        self._bindings = dict(bindings)

    async def lookup(self, broker_user: str) -> InboundBinding | None:
        return self._bindings.get(broker_user)

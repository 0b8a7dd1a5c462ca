"""Who is calling: the roles of SPEC §9.3 and the authenticated principal every use case gets."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel


class Role(StrEnum):
    admin = "admin"
    province_staff = "province_staff"
    district_staff = "district_staff"
    commune_staff = "commune_staff"
    viewer = "viewer"
    system = "system"
    """another system: an API key, or a RabbitMQ user publishing on `lhpn.inbound`"""


STAFF_ROLES = frozenset({Role.province_staff, Role.district_staff, Role.commune_staff})


class Principal(BaseModel):
    """The authenticated caller. `subject` is what the audit log and every `*_by` field record:
    a username, `system:<name>` for an API key, `broker:<user>` for an inbound broker user."""

    subject: str
    role: Role
    unit_id: str | None = None
    allowed_events: frozenset[str] | None = None
    """Routing keys (e.g. `activity.recorded.v1`) a system may send; None: not restricted here."""
    allowed_routes: frozenset[str] | None = None
    """Permission names of the routes an API key may call; None: not restricted here."""
    address: str | None = None
    """Where this request came from (client address, `amqp:<queue>`), for the audit log."""

    @property
    def is_admin(self) -> bool:
        return self.role is Role.admin

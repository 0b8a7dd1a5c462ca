"""The event envelope and the v1 event types (SPEC §9.1).

Routing key = `<type>.v<version>`. `DATA_MODELS` maps (type, version) to the model of `data`;
`parse_data` validates an envelope's data against it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from .. import correlation
from .access import ApiKeyAccess, UserAccess
from .activities import Activity
from .cases import CaseFacts, CaseStatusChange
from .plans import Plan
from .reports import Report
from .units import Unit


class Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: UUID
    type: str = Field(min_length=1, max_length=100, pattern=r"^[a-z_]+(\.[a-z_]+)+$")
    version: int = Field(ge=1)
    occurred_at: AwareDatetime
    source: str = Field(min_length=1, max_length=100)
    unit_id: str | None = None
    correlation_id: str | None = None
    data: dict[str, Any]

    @property
    def routing_key(self) -> str:
        return routing_key(self.type, self.version)


def routing_key(event_type: str, version: int) -> str:
    return f"{event_type}.v{version}"


class ActivityVoided(BaseModel):
    activity_id: UUID
    unit_id: str
    revision: int = Field(ge=1, description="the revision the void creates")
    voided_at: datetime
    reason: str = ""


class ObligationFacts(BaseModel):
    obligation_id: str = Field(description="<plan_id>:<report_type>:<period>:<unit_id>")
    plan_id: str
    unit_id: str
    report_type: str
    period: str
    due_at: datetime
    recipient_unit_id: str | None
    status: str
    received_at: datetime | None = None


class NotificationFacts(BaseModel):
    """A delivery: who was told what, by which channel. No personal data of case requesters."""

    notification_id: str
    unit_id: str
    channel: str = Field(description="email | webhook")
    step: str = Field(description="e.g. before_3d, due_day, after_1d, after_3d, parent_digest")
    subject_ref: str = Field(description="obligation or case the notification is about")
    status: str
    attempts: int = 0
    last_error: str | None = None


DATA_MODELS: dict[tuple[str, int], type[BaseModel]] = {
    ("unit.upserted", 1): Unit,
    ("plan.published", 1): Plan,
    ("activity.recorded", 1): Activity,
    ("activity.voided", 1): ActivityVoided,
    ("report.submitted", 1): Report,
    ("case.opened", 1): CaseFacts,
    ("case.status_changed", 1): CaseStatusChange,
    ("case.closed", 1): CaseStatusChange,
    ("obligation.fulfilled", 1): ObligationFacts,
    ("obligation.overdue", 1): ObligationFacts,
    ("notification.sent", 1): NotificationFacts,
    ("notification.failed", 1): NotificationFacts,
    ("user.upserted", 1): UserAccess,
    ("api_key.upserted", 1): ApiKeyAccess,
}

# What other systems may publish on `lhpn.inbound` (SPEC §9.1).
INBOUND_TYPES: frozenset[tuple[str, int]] = frozenset(
    {
        ("activity.recorded", 1),
        ("activity.voided", 1),
        ("report.submitted", 1),
        ("case.opened", 1),
    }
)


class UnknownEventType(ValueError):
    pass


def parse_data(envelope: Envelope) -> BaseModel:
    model = DATA_MODELS.get((envelope.type, envelope.version))
    if model is None:
        raise UnknownEventType(f"unknown event type {envelope.routing_key}")
    return model.model_validate(envelope.data)


def make_event(
    event_type: str,
    data: BaseModel,
    *,
    source: str,
    occurred_at: datetime,
    unit_id: str | None = None,
    version: int = 1,
    event_id: UUID | None = None,
    correlation_id: str | None = None,
) -> Envelope:
    """Build an envelope around `data` (checked against the registered model). Without a
    `correlation_id`, the envelope carries the current one (the request or the event being
    handled: `lhpn_shared.correlation`)."""
    model = DATA_MODELS.get((event_type, version))
    if model is None or not isinstance(data, model):
        raise UnknownEventType(f"{event_type}.v{version} does not carry {type(data).__name__}")
    return Envelope(
        event_id=event_id or uuid4(),
        type=event_type,
        version=version,
        occurred_at=occurred_at,
        source=source,
        unit_id=unit_id,
        correlation_id=correlation_id or correlation.current(),
        data=data.model_dump(mode="json"),
    )

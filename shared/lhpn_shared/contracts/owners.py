"""Which service owns each event type: the only one that may publish it on `lhpn.events`.

The broker enforces it on publish (topic permissions, `lhpn_shared.broker_accounts`), and every
consumer checks it again on receipt from the message's AMQP `user_id`, which RabbitMQ
guarantees is the publisher's own user (`lhpn_shared.trust.EventOwners`).
"""

from __future__ import annotations

EVENT_OWNERS: dict[str, str] = {
    "unit.upserted": "intake",
    "plan.published": "intake",
    "activity.recorded": "intake",
    "activity.voided": "intake",
    "report.submitted": "intake",
    "user.upserted": "intake",
    "api_key.upserted": "intake",
    "case.opened": "cases",
    "case.status_changed": "cases",
    "case.closed": "cases",
    "obligation.fulfilled": "reminders",
    "obligation.overdue": "reminders",
    "notification.sent": "reminders",
    "notification.failed": "reminders",
}

SERVICES: tuple[str, ...] = ("intake", "cases", "reminders", "aggregation")
"""Every service that connects to the broker (each with its own user)."""


def owner_of(event_type: str) -> str | None:
    return EVENT_OWNERS.get(event_type)


def owned_by(service: str) -> list[str]:
    return sorted(t for t, owner in EVENT_OWNERS.items() if owner == service)

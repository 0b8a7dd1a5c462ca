"""What the operators' dashboard reads from reminders' `/metrics`: reminders sent and failed,
and the events it consumed, against the real broker, DevMongo and SMTP server."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from .conftest import DISTRICTS, Service, SmtpSink, vn


async def samples(service: Service) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    r = await service.client.get("/metrics")
    assert r.status_code == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return sum(v for (n, ls), v in found.items() if n == name and set(labels.items()) <= ls)


async def test_reminders_sent_and_failed_are_counted_per_channel(
    province: Service, smtp: SmtpSink
) -> None:
    await province.set_contacts("563", emails=[])  # no address at all: failed at once

    result = await province.sweep(vn(2021, 10, 27, 8))

    statuses = [n["status"] for n in result["notifications"]]
    assert statuses.count("sent") == len(DISTRICTS) - 1 and statuses.count("failed") == 1
    found = await samples(province)
    sent = value(found, "lhpn_notifications_total", channel="email", status="sent")
    failed = value(found, "lhpn_notifications_total", channel="email", status="failed")
    assert (sent, failed) == (len(DISTRICTS) - 1, 1)
    assert len(smtp.take()) == len(DISTRICTS) - 1


async def test_the_events_reminders_consumed_are_counted_per_type(province: Service) -> None:
    found = await samples(province)

    units = value(
        found,
        "faststream_received_processed_messages_total",
        app_name="reminders",
        handler="lhpn.events.unit.upserted.v1",
        status="acked",
    )
    plans = value(
        found,
        "faststream_received_processed_messages_total",
        app_name="reminders",
        handler="lhpn.events.plan.published.v1",
        status="acked",
    )
    assert (units, plans) == (1 + len(DISTRICTS), 1)
    assert value(found, "lhpn_dead_letter_messages", queue="reminders.events.dlq") == 0
    assert (
        "lhpn_outbox_pending_documents",
        frozenset({("service", "reminders"), ("collection", "obligations")}),
    ) in found

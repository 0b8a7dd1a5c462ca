"""What a consumer holds and whether it moves (`lhpn_shared.consumers`), and `process_delivery`
through a broker restart."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from lhpn_shared.auth import Principal, Role
from lhpn_shared.broker import process_delivery
from lhpn_shared.consumers import ConsumerMetrics, Consumers, QueueProgress
from lhpn_shared.contracts.events import Envelope, make_event
from lhpn_shared.contracts.units import Unit
from tests.support.fake_amqp import FakeBroker, FakeChannel


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class AnyPublisher:
    """An admission that lets every publisher in (who may publish is `trust`'s concern)."""

    async def admit(self, envelope: Envelope, user_id: str | None) -> Principal:
        return Principal(subject="broker:test", role=Role.system)


def unit_event() -> Envelope:
    unit = Unit(unit_id=uuid.uuid4().hex[:8], name="Phường 1", kind="phường", level="commune")
    return make_event("unit.upserted", unit, source="test", occurred_at=datetime.now(UTC))


def test_nothing_held_is_never_stalled_however_long_the_queue_is_quiet() -> None:
    clock = Clock()
    progress = QueueProgress("q", now=clock)
    clock.t += 3600
    assert (progress.held(), progress.oldest_age(), progress.stalled(60)) == (0, 0.0, False)


def test_deliveries_held_with_none_settled_for_longer_than_the_limit_is_a_stall() -> None:
    clock = Clock()
    progress = QueueProgress("q", now=clock)
    channel = FakeChannel()
    first, second = channel.deliver(b"1"), channel.deliver(b"2")
    progress.received(first)
    clock.t += 30
    progress.received(second)
    clock.t += 31
    assert progress.held() == 2
    assert progress.oldest_age() == 61
    assert progress.stalled(60)

    progress.settled(first)  # progress: the clock of the stall starts again
    assert not progress.stalled(60)
    assert progress.oldest_age() == 31
    clock.t += 61
    assert progress.stalled(60)


def test_a_delivery_whose_channel_closed_is_no_longer_held() -> None:
    clock = Clock()
    progress = QueueProgress("q", now=clock)
    old, new = FakeChannel(), FakeChannel()
    progress.received(old.deliver(b"1"))
    progress.received(new.deliver(b"2"))
    clock.t += 120
    old.close()  # the broker requeued it: nobody holds it any more
    assert progress.held() == 1
    new.close()
    assert (progress.held(), progress.stalled(60)) == (0, False)


def test_the_metrics_give_per_queue_the_oldest_unacked_age_the_last_batch_and_redeliveries() -> (
    None
):
    clock, wall = Clock(), Clock()
    consumers = Consumers(now=clock, wall=wall)
    channel = FakeChannel()
    consumers.queue("aggregation.events").received(channel.deliver(b"1"))
    again = channel.deliver(b"2")
    again.raw_message.redelivered = True  # requeued, or held by a consumer that went away
    consumers.queue("aggregation.events").received(again)
    consumers.queue("aggregation.events").settled(again)
    consumers.queue("aggregation.events").applied()
    consumers.queue("reminders.events")
    clock.t += 12.5
    registry = CollectorRegistry()
    registry.register(ConsumerMetrics("aggregation", consumers))
    text = generate_latest(registry).decode()
    labels = 'queue="aggregation.events",service="aggregation"'
    assert f"lhpn_consumer_oldest_unacked_age_seconds{{{labels}}} 12.5" in text
    assert f"lhpn_consumer_unacked_messages{{{labels}}} 1.0" in text
    assert f"lhpn_consumer_last_batch_applied_timestamp_seconds{{{labels}}} 1000.0" in text
    assert f"lhpn_consumer_redelivered_total{{{labels}}} 1.0" in text
    quiet = 'queue="reminders.events",service="aggregation"'
    assert f"lhpn_consumer_unacked_messages{{{quiet}}} 0.0" in text
    assert f"lhpn_consumer_last_batch_applied_timestamp_seconds{{{quiet}}}" not in text
    assert consumers.stalled(10) == ["aggregation.events"]


async def test_process_delivery_acks_after_the_handler_and_reports_the_message_applied() -> None:
    progress = QueueProgress("q")
    msg = FakeChannel().deliver(unit_event().model_dump_json().encode())
    handled: list[str] = []

    async def handle(envelope: Envelope, principal: Principal) -> None:
        handled.append(envelope.type)

    await process_delivery(
        FakeBroker(),  # type: ignore[arg-type]
        msg,  # type: ignore[arg-type]
        "q",
        handle,
        admission=AnyPublisher(),
        progress=progress,
    )
    assert (handled, msg.state, progress.held()) == (["unit.upserted"], "acked", 0)
    assert progress.last_applied_at is not None


async def test_process_delivery_survives_a_channel_that_closed_while_the_handler_ran(
    caplog: pytest.LogCaptureFixture,
) -> None:
    progress = QueueProgress("q")
    channel = FakeChannel()
    msg = channel.deliver(unit_event().model_dump_json().encode())

    async def handle(envelope: Envelope, principal: Principal) -> None:
        channel.close()  # the broker restarts meanwhile

    with caplog.at_level(logging.WARNING, logger="lhpn.broker"):
        await process_delivery(
            FakeBroker(),  # type: ignore[arg-type]
            msg,  # type: ignore[arg-type]
            "q",
            handle,
            admission=AnyPublisher(),
            progress=progress,
        )
    assert msg.state == "returned"  # the broker delivers it again; the handler is idempotent
    assert progress.held() == 0
    assert any("redelivers" in r.getMessage() for r in caplog.records)


async def test_process_delivery_requeues_on_a_dependency_outage_even_if_the_channel_is_gone() -> (
    None
):
    progress = QueueProgress("q")
    channel = FakeChannel()
    msg = channel.deliver(unit_event().model_dump_json().encode())

    async def handle(envelope: Envelope, principal: Principal) -> Any:
        channel.close()
        raise ConnectionError("database down")

    await process_delivery(
        FakeBroker(),  # type: ignore[arg-type]
        msg,  # type: ignore[arg-type]
        "q",
        handle,
        admission=AnyPublisher(),
        retry_delay=0.01,
        progress=progress,
    )
    assert (msg.state, progress.held()) == ("returned", 0)


def test_a_delivery_on_a_channel_already_closed_is_not_held_and_closed_channels_are_forgotten() -> (
    None
):
    progress = QueueProgress("q", now=Clock())
    gone, open_ = FakeChannel(), FakeChannel()
    late = gone.deliver(b"1")
    gone.close()  # closed before the consumer saw the delivery: the broker requeued it
    progress.received(late)
    progress.received(open_.deliver(b"2"))
    assert progress.held() == 1
    assert len(progress._channels) == 1  # the closed one (None) was dropped with its delivery
    open_.close()
    assert (progress.held(), len(progress._channels)) == (0, 0)


def test_the_oldest_held_delivery_is_the_first_still_held() -> None:
    clock = Clock()
    progress = QueueProgress("q", now=clock)
    channel = FakeChannel()
    first, second, third = (channel.deliver(str(n).encode()) for n in range(3))
    for msg in (first, second, third):
        progress.received(msg)
        clock.t += 10
    progress.settled(first)
    assert progress.oldest_age() == 20  # second arrived at 1010, now 1030
    progress.settled(third)
    assert progress.oldest_age() == 20
    progress.settled(second)
    assert progress.oldest_age() == 0.0

"""A message that fails the same way again and again is dead-lettered after a bounded number of
attempts; an outage of a dependency never counts; a dead letter replayed by the consuming
service counts as sent by its first publisher (`lhpn_shared.broker`), without a broker."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo.errors import AutoReconnect, ServerSelectionTimeoutError

from lhpn_shared.auth import Principal, Role
from lhpn_shared.broker import Reject, dead_letter, process_delivery, sender_of
from lhpn_shared.consumers import QueueProgress
from lhpn_shared.contracts.events import Envelope, make_event
from lhpn_shared.contracts.units import Unit
from tests.support.fake_amqp import FakeBroker, FakeChannel, FakeMessage

OWN = "lhpn-reminders"


class Senders:
    """An admission that records who it was asked about."""

    def __init__(self) -> None:
        self.seen: list[str | None] = []

    async def admit(self, envelope: Envelope, user_id: str | None) -> Principal:
        self.seen.append(user_id)
        return Principal(subject=f"broker:{user_id}", role=Role.system)


def unit_event() -> Envelope:
    unit = Unit(unit_id=uuid.uuid4().hex[:8], name="Phường 1", kind="phường", level="commune")
    return make_event("unit.upserted", unit, source="test", occurred_at=datetime.now(UTC))


def delivered(channel: FakeChannel, envelope: Envelope) -> FakeMessage:
    msg = channel.deliver(envelope.model_dump_json().encode())
    msg.raw_message.message_id = msg.message_id = str(envelope.event_id)
    msg.raw_message.user_id = "lhpn-intake"
    return msg


async def deliver(
    msg: FakeMessage,
    handle: Any,
    progress: QueueProgress,
    broker: FakeBroker,
    admission: Any = None,
    max_attempts: int = 3,
) -> None:
    await process_delivery(
        broker,  # type: ignore[arg-type]
        msg,  # type: ignore[arg-type]
        "reminders.events",
        handle,
        admission=admission or Senders(),
        retry_delay=0.001,
        progress=progress,
        own_user=OWN,
        max_attempts=max_attempts,
    )


async def test_a_message_failing_every_time_is_requeued_then_dead_lettered_at_the_last_try() -> (
    None
):
    progress, broker, channel = QueueProgress("reminders.events"), FakeBroker(), FakeChannel()
    envelope = unit_event()
    calls = 0

    async def bug(envelope: Envelope, principal: Principal) -> None:
        nonlocal calls
        calls += 1
        raise KeyError("a field this code did not expect")

    states = []
    for _ in range(3):  # RabbitMQ delivers a requeued message again
        msg = delivered(channel, envelope)
        await deliver(msg, bug, progress, broker)
        states.append(msg.state)
    assert (calls, states) == (3, ["requeued", "requeued", "acked"])
    ((body, headers),) = broker.dead
    assert body == envelope.model_dump_json().encode()
    assert headers["x-rejection-reason"] == "handler error: KeyError (failed 3 times)"
    assert headers["x-attempts"] == 3
    assert headers["x-original-user-id"] == "lhpn-intake"
    assert len(progress.attempts) == 0  # forgotten once dead-lettered
    assert progress.held() == 0


@pytest.mark.parametrize(
    "outage",
    [AutoReconnect("connection refused"), ServerSelectionTimeoutError("no server"), TimeoutError()],
)
async def test_an_outage_of_a_dependency_is_never_counted_and_never_dead_letters(
    outage: Exception,
) -> None:
    progress, broker, channel = QueueProgress("reminders.events"), FakeBroker(), FakeChannel()
    envelope = unit_event()

    async def down(envelope: Envelope, principal: Principal) -> None:
        raise outage

    for _ in range(10):  # far more than max_attempts
        msg = delivered(channel, envelope)
        await deliver(msg, down, progress, broker)
        assert msg.state == "requeued"
    assert broker.dead == [] and len(progress.attempts) == 0


async def test_a_message_that_fails_twice_then_succeeds_is_applied_and_its_count_forgotten() -> (
    None
):
    progress, broker, channel = QueueProgress("reminders.events"), FakeBroker(), FakeChannel()
    envelope = unit_event()
    failures = 2

    async def flaky(envelope: Envelope, principal: Principal) -> None:
        nonlocal failures
        if failures:
            failures -= 1
            raise RuntimeError("a race with another writer")

    states = []
    for _ in range(3):
        msg = delivered(channel, envelope)
        await deliver(msg, flaky, progress, broker)
        states.append(msg.state)
    assert states == ["requeued", "requeued", "acked"]
    assert broker.dead == [] and len(progress.attempts) == 0


async def test_a_dead_letter_replayed_by_its_consumer_is_admitted_as_sent_by_its_first_sender() -> (
    None
):
    progress, broker, channel = QueueProgress("reminders.events"), FakeBroker(), FakeChannel()
    msg = delivered(channel, unit_event())
    msg.raw_message.exchange = "lhpn.replay"
    msg.raw_message.routing_key = "reminders.events"
    msg.raw_message.user_id = OWN  # only the service itself can publish as its own user
    msg.raw_message.headers = {"x-original-user-id": "lhpn-intake"}
    senders = Senders()

    async def fine(envelope: Envelope, principal: Principal) -> None:
        pass

    await deliver(msg, fine, progress, broker, admission=senders)
    assert (senders.seen, msg.state) == (["lhpn-intake"], "acked")


@pytest.mark.parametrize("replayer", ["lhpn-cases", "lhpn-admin", None])
def test_anything_else_arriving_through_the_replay_exchange_is_refused(
    replayer: str | None,
) -> None:
    msg = FakeChannel().deliver(b"{}")
    msg.raw_message.exchange = "lhpn.replay"
    msg.raw_message.user_id = replayer
    msg.raw_message.headers = {"x-original-user-id": "lhpn-intake"}
    with pytest.raises(Reject, match="not by the consuming service"):
        sender_of(msg.raw_message, OWN)


def test_a_message_from_any_other_exchange_is_sent_by_its_user_id_whatever_its_headers() -> None:
    msg = FakeChannel().deliver(b"{}")
    msg.raw_message.user_id = "lhpn-cases"
    msg.raw_message.headers = {"x-original-user-id": "lhpn-intake"}  # anyone can write headers
    assert sender_of(msg.raw_message, OWN) == "lhpn-cases"


async def test_a_replayed_message_dead_lettered_again_keeps_where_it_was_first_published() -> None:
    broker = FakeBroker()
    msg = FakeChannel().deliver(b"{}")
    msg.raw_message.exchange = "lhpn.replay"
    msg.raw_message.routing_key = "reminders.events"
    msg.raw_message.user_id = OWN
    msg.raw_message.headers = {
        "x-original-exchange": "lhpn.events",
        "x-original-routing-key": "report.submitted.v1",
        "x-original-user-id": "lhpn-intake",
        "x-rejection-reason": "handler error: KeyError (failed 5 times)",
        "x-attempts": 5,
    }
    await dead_letter(broker, msg, "reminders.events", "invalid data: x")  # type: ignore[arg-type]
    ((_, headers),) = broker.dead
    assert headers["x-original-exchange"] == "lhpn.events"
    assert headers["x-original-routing-key"] == "report.submitted.v1"
    assert headers["x-original-user-id"] == "lhpn-intake"
    assert headers["x-rejection-reason"] == "invalid data: x"
    assert "x-attempts" not in headers

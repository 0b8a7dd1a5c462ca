"""The consumer's batching, with a fake broker and messages: acks only after the batch is
stored, requeues what the database refused, dead-letters only what can never be applied, and
goes on through a broker restart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any
from uuid import uuid4

from pymongo.errors import AutoReconnect

from aggregation.batch import Event
from aggregation.consumer import Batcher
from lhpn_shared.contracts.activities import Activity, ActivityKind
from lhpn_shared.contracts.events import Envelope, make_event
from lhpn_shared.trust import EventOwners
from tests.support.fake_amqp import FakeBroker, FakeChannel, FakeMessage
from tests.support.http import eventually

OWNERS = EventOwners("lhpn-")
INTAKE = OWNERS.user_of("intake")  # the owner of activity.recorded


def event(unit_id: str = "22015") -> Envelope:
    activity = Activity(
        activity_id=uuid4(),
        unit_id=unit_id,
        kind=ActivityKind.supervision,
        occurred_on=date(2021, 3, 5),
        title="Giám sát chính sách",
    )
    return make_event("activity.recorded", activity, source="test", occurred_at=datetime.now(UTC))


def deliveries(
    *envelopes: Envelope | bytes, channel: FakeChannel | None = None
) -> list[FakeMessage]:
    """Deliveries on `channel` (a new one by default), published by intake's broker user."""
    channel = channel or FakeChannel()
    out = [
        channel.deliver(e if isinstance(e, bytes) else e.model_dump_json().encode())
        for e in envelopes
    ]
    for msg in out:
        msg.raw_message.user_id = INTAKE
    return out


class Recorder:
    """An `apply` that remembers its batches, and checks none of their messages is acked yet."""

    def __init__(self, messages: list[FakeMessage], fail: Any = None) -> None:
        self.messages = messages
        self.batches: list[list[str]] = []
        self.fail = fail
        self.acked_early: list[int] = []

    async def __call__(self, events: Sequence[Event]) -> list[bool]:
        mine = {e.body.encode() for e in events}
        self.acked_early += [
            m.raw_message.delivery_tag
            for m in self.messages
            if m.raw_message.body in mine and m.state is not None
        ]
        if self.fail is not None:
            self.fail(events)
        self.batches.append([str(e.envelope.event_id) for e in events])
        return [True] * len(events)


async def run(batcher: Batcher, messages: list[FakeMessage], timeout: float = 5) -> None:
    task = asyncio.create_task(batcher.run())
    for m in messages:
        await batcher.add(m)  # type: ignore[arg-type]
    deadline = time.monotonic() + timeout
    while any(m.state is None for m in messages) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    batcher.stop()
    await asyncio.wait_for(task, 5)


async def test_messages_are_acked_only_after_their_batch_was_applied():
    messages = deliveries(*(event() for _ in range(7)))
    apply = Recorder(messages)
    batcher = Batcher(FakeBroker(), "q", apply, size=3, interval=0.05, owners=OWNERS)  # type: ignore[arg-type]
    await run(batcher, messages)
    assert [len(b) for b in apply.batches] == [3, 3, 1]
    assert apply.acked_early == []
    assert {m.state for m in messages} == {"acked"}
    assert messages[0].raw_message.channel.frames == 3  # one `multiple` ack per batch


async def test_a_batch_the_database_refused_is_requeued_and_none_of_it_acked():
    messages = deliveries(*(event() for _ in range(4)))

    def down(events: Sequence[Event]) -> None:
        raise AutoReconnect("connection refused")

    batcher = Batcher(
        FakeBroker(),  # type: ignore[arg-type]
        "q",
        Recorder(messages, fail=down),
        size=10,
        interval=0.01,
        retry_delay=0.01,
        owners=OWNERS,
    )
    await run(batcher, messages)
    assert {m.state for m in messages} == {"requeued"}


async def test_a_message_that_is_not_an_event_is_dead_lettered_and_the_others_applied():
    bad, *good = deliveries(b'{"event_id": "nope"}', event(), event(), event())
    broker = FakeBroker()
    apply = Recorder(good)
    batcher = Batcher(broker, "q", apply, size=10, interval=0.01, owners=OWNERS)  # type: ignore[arg-type]
    await run(batcher, [*good, bad])
    assert {m.state for m in good} == {"acked"} and bad.state == "acked"
    ((body, headers),) = broker.dead
    assert body == bad.raw_message.body
    assert headers["x-rejection-reason"].startswith("invalid envelope: ")
    assert len(apply.batches[0]) == 3


async def test_an_event_that_fails_every_time_is_dead_lettered_after_max_attempts_and_never_holds_the_others_back():  # noqa: E501
    poison = event("99999")
    channel = FakeChannel()
    messages = deliveries(event(), poison, event(), channel=channel)
    for m in messages:
        m.raw_message.message_id = m.message_id = str(uuid4())
    tried: list[int] = []

    def choke(events: Sequence[Event]) -> None:
        if any(e.envelope.event_id == poison.event_id for e in events):
            tried.append(len(events))
            raise RuntimeError("bug")

    broker = FakeBroker()
    batcher = Batcher(
        broker,  # type: ignore[arg-type]
        "q",
        Recorder(messages, fail=choke),
        size=10,
        interval=0.01,
        owners=OWNERS,
        max_attempts=3,
    )
    task = asyncio.create_task(batcher.run())
    for m in messages:
        await batcher.add(m)  # type: ignore[arg-type]
    deliveries_of_poison = [messages[1]]

    async def redeliver_requeued() -> bool:
        """What RabbitMQ does with a requeued message: deliver it again (same id, new tag)."""
        last = deliveries_of_poison[-1]
        if last.state == "requeued":
            again = channel.deliver(last.raw_message.body)
            again.raw_message.user_id = INTAKE
            again.raw_message.message_id = again.message_id = last.message_id
            deliveries_of_poison.append(again)
            await batcher.add(again)  # type: ignore[arg-type]
        return last.state == "acked"  # acked once it is safe in the DLQ

    await eventually(redeliver_requeued, timeout=5)
    batcher.stop()
    await asyncio.wait_for(task, 5)
    assert [m.state for m in messages[::2]] == ["acked", "acked"]  # the others went through
    assert [m.state for m in deliveries_of_poison] == ["requeued", "requeued", "acked"]
    ((body, headers),) = broker.dead
    assert body == poison.model_dump_json().encode()
    assert headers["x-rejection-reason"] == "handler error: RuntimeError (failed 3 times)"
    assert headers["x-attempts"] == 3


async def test_a_partial_batch_waits_at_most_the_flush_interval():
    messages = deliveries(event())
    batcher = Batcher(
        FakeBroker(),  # type: ignore[arg-type]
        "q",
        Recorder(messages),
        size=100,
        interval=0.2,
        owners=OWNERS,
    )
    started = time.monotonic()
    await run(batcher, messages)
    # applied by the timer (the batch never filled up), not before it: no upper bound on how
    # late, which a loaded two-core machine cannot promise — `run` gives up after 5 s
    assert time.monotonic() - started >= 0.15
    assert messages[0].state == "acked"


async def test_deliveries_that_reach_the_buffer_out_of_order_are_never_acked_before_stored():
    messages = deliveries(*(event() for _ in range(8)))
    arrival = [messages[i] for i in (1, 2, 0, 4, 5, 3, 7, 6)]
    apply = Recorder(messages)
    batcher = Batcher(FakeBroker(), "q", apply, size=2, interval=0.05, owners=OWNERS)  # type: ignore[arg-type]
    await run(batcher, arrival)
    assert apply.acked_early == []
    assert messages[0].raw_message.channel.errors == []
    assert {m.state for m in messages} == {"acked"}


async def test_an_event_from_anyone_but_its_owner_is_dead_lettered_and_the_others_applied():
    stranger, no_user, *good = deliveries(event(), event(), event(), event())
    stranger.raw_message.user_id = OWNERS.user_of("reminders")
    no_user.raw_message.user_id = None
    broker = FakeBroker()
    apply = Recorder(good)
    batcher = Batcher(broker, "q", apply, size=10, interval=0.01, owners=OWNERS)  # type: ignore[arg-type]
    await run(batcher, [stranger, no_user, *good])
    assert [len(b) for b in apply.batches] == [2]
    assert {m.state for m in (stranger, no_user, *good)} == {"acked"}
    reasons = {body: headers["x-rejection-reason"] for body, headers in broker.dead}
    assert reasons[stranger.raw_message.body] == (
        "activity.recorded is published only by lhpn-intake (intake); "
        "this one was sent by 'lhpn-reminders'"
    )
    assert reasons[no_user.raw_message.body].endswith("this one was sent without a user_id")


async def until(condition: Any, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met"
        await asyncio.sleep(0.01)


async def test_a_broker_restart_while_a_batch_is_written_does_not_end_the_flusher():
    envelopes = [event() for _ in range(3)]
    old = FakeChannel()
    first = deliveries(*envelopes, channel=old)
    restarted = False

    def restart_once(events: Sequence[Event]) -> None:
        nonlocal restarted
        if not restarted:  # the broker restarts while the batch is being written
            restarted = True
            old.close()

    apply = Recorder(first, fail=restart_once)
    batcher = Batcher(FakeBroker(), "q", apply, size=10, interval=0.01, owners=OWNERS)  # type: ignore[arg-type]
    flusher = asyncio.create_task(batcher.run())
    for m in first:
        await batcher.add(m)  # type: ignore[arg-type]
    await until(lambda: len(apply.batches) == 1)
    assert {m.state for m in first} == {"returned"}  # nothing could be acked: redelivered

    again = deliveries(*envelopes)  # the same events, on the channel of the new connection
    for m in again:
        await batcher.add(m)  # type: ignore[arg-type]
    await until(lambda: all(m.state for m in again))
    assert not flusher.done()
    assert {m.state for m in again} == {"acked"}
    assert batcher.progress.held() == 0
    batcher.stop()
    await asyncio.wait_for(flusher, 5)


async def test_buffered_deliveries_of_a_closed_channel_are_dropped_not_applied():
    channel = FakeChannel()
    stale = deliveries(event(), event(), channel=channel)
    apply = Recorder(stale)
    batcher = Batcher(FakeBroker(), "q", apply, size=10, interval=0.2, owners=OWNERS)  # type: ignore[arg-type]
    flusher = asyncio.create_task(batcher.run())
    for m in stale:
        await batcher.add(m)  # type: ignore[arg-type]
    channel.close()  # before the batch was due
    fresh = deliveries(event())
    await batcher.add(fresh[0])  # type: ignore[arg-type]
    await until(lambda: fresh[0].state == "acked")
    assert [len(b) for b in apply.batches] == [1]
    assert batcher.progress.held() == 0
    batcher.stop()
    await asyncio.wait_for(flusher, 5)


async def test_a_flusher_started_again_after_a_failure_requeues_the_batch_it_held():
    messages = deliveries(*(event() for _ in range(3)))
    batcher = Batcher(FakeBroker(), "q", Recorder(messages), size=10, interval=0.01, owners=OWNERS)  # type: ignore[arg-type]

    async def broken(batch: list[Any]) -> None:
        raise RuntimeError("injected")

    batcher._flush = broken  # type: ignore[method-assign]
    for m in messages:
        await batcher.add(m)  # type: ignore[arg-type]
    failed = asyncio.create_task(batcher.run())
    await asyncio.wait({failed}, timeout=5)
    assert isinstance(failed.exception(), RuntimeError)
    assert batcher.progress.held() == 3  # held, and nothing will settle them but a restart

    del batcher._flush  # what the supervisor does: run it again
    again = asyncio.create_task(batcher.run())
    await until(lambda: all(m.state for m in messages))
    assert [m.state for m in messages] == ["requeued"] * 3
    assert messages[0].raw_message.channel.errors == []
    assert batcher.progress.held() == 0
    batcher.stop()
    await asyncio.wait_for(again, 5)


async def test_the_batcher_reports_what_it_holds_and_when_it_last_applied_a_batch():
    messages = deliveries(event(), event())
    apply = Recorder(messages)
    batcher = Batcher(FakeBroker(), "q", apply, size=10, interval=0.2, owners=OWNERS)  # type: ignore[arg-type]
    assert batcher.progress.last_applied_at is None
    before = time.time()
    flusher = asyncio.create_task(batcher.run())
    for m in messages:
        await batcher.add(m)  # type: ignore[arg-type]
    assert batcher.progress.held() == 2  # the batch waits for the flush interval
    await until(lambda: all(m.state == "acked" for m in messages))
    batcher.stop()
    await asyncio.wait_for(flusher, 5)
    assert batcher.progress.held() == 0
    assert batcher.progress.last_applied_at is not None
    assert batcher.progress.last_applied_at >= before


async def test_a_partitions_dead_letter_replayed_by_the_service_is_admitted_as_its_routers():
    """Partitions (issue 13): what the router sent to a partition and the partition
    dead-lettered is replayed through `lhpn.replay` by the service's own user, with the origin
    it recorded (the partitions exchange, its own user): admitted as the router's, with no owner
    check. A replay whose recorded origin is anything else still answers to the owner check."""
    own = OWNERS.user_of("aggregation")
    replayed, forged, direct, stranger = deliveries(event(), event(), event(), event())
    for msg, origin in ((replayed, "aggregation.partitions"), (forged, "lhpn.events")):
        msg.raw_message.exchange = "lhpn.replay"
        msg.raw_message.user_id = own
        msg.raw_message.headers = {
            "x-original-exchange": origin,
            "x-original-user-id": own,
            "x-original-routing-key": "0",
        }
    direct.raw_message.exchange = "aggregation.partitions"
    direct.raw_message.user_id = own
    stranger.raw_message.exchange = "aggregation.partitions"  # not the service's user
    broker = FakeBroker()
    apply = Recorder([replayed, direct, stranger])
    batcher = Batcher(
        broker,  # type: ignore[arg-type]
        "aggregation.events.p0",
        apply,
        size=10,
        interval=0.01,
        owners=OWNERS,
        own_user=own,
        routed_by="aggregation.partitions",
    )
    await run(batcher, [replayed, forged, direct, stranger])
    assert sorted(b for batch in apply.batches for b in batch) == sorted(
        str(Envelope.model_validate_json(m.raw_message.body).event_id)
        for m in (replayed, direct, stranger)
    )
    reasons = {body: headers["x-rejection-reason"] for body, headers in broker.dead}
    assert reasons[forged.raw_message.body].endswith(f"this one was sent by '{own}'")
    assert len(reasons) == 1  # the stranger's: intake's own event, admitted by the owner check

"""A sweep whose deliveries outlast its lease (a big catch-up, a slow mail server) shares its
sends with the delivery worker without ever sending one twice (found by the fault suite: 261
reminders sent twice)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from lhpn_shared.clock import FixedClock
from reminders.settings import RemindersSettings
from tests.support.http import eventually
from tests.support.infra import RabbitVhost

from .conftest import SmtpSink, plan_event, publish_districts, started, thematic_plan, vn


class SlowSmtpSink(SmtpSink):
    """Takes a while to accept each message, like a loaded mail server: 5 s of the service's
    clock pass for every message (so the sweep's claim on the sends it has not attempted yet
    ends after a dozen, while no single attempt ever outlives the lease renewed before it)."""

    def __init__(self, clock: FixedClock) -> None:
        super().__init__()
        self.clock = clock

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(0.05)
        self.clock.advance(timedelta(seconds=5))
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def smtp(clock: FixedClock) -> Iterator[SmtpSink]:
    sink = SlowSmtpSink(clock)
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


async def test_a_sweep_that_outlives_its_lease_never_sends_a_reminder_twice_with_the_worker(
    settings: RemindersSettings, clock: FixedClock, rabbit: RabbitVhost, smtp: SmtpSink
) -> None:
    one_at_a_time = settings.model_copy(
        update={"delivery_concurrency": 1, "delivery_lease_seconds": 60}
    )
    async with started(one_at_a_time, clock, rabbit) as service:
        await publish_districts(service)
        await service.publish(plan_event(thematic_plan()))
        await service.wait_obligations(9, report_type="thematic_annual", unit_id="54")
        as_of = vn(2021, 11, 4, 8)  # 4 reminders to each of the 9 districts, and a digest
        result = await service.sweep(as_of)

        async def all_sent() -> Counter[tuple[str, str]] | None:
            sent = Counter((r, m.step) for m in smtp.received for r in m.recipients)
            return sent if sum(sent.values()) >= result["planned"] else None

        sent = await eventually(all_sent, timeout=60)
    assert result["planned"] == 37
    assert [pair for pair, n in sent.items() if n > 1] == []
    assert len(sent) == 37
    # the sweep's lease ended on the way: the worker delivered part of them
    by_sweep = sum(1 for n in result["notifications"] if n["status"] == "sent")
    assert 0 < by_sweep < 37, by_sweep

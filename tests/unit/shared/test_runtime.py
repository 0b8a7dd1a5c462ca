"""The supervisor of every service's background work (`lhpn_shared.runtime.Background`): no task
dies silently, a failed one is started again, a stalled consumer's task too, and `/readyz` says
not ready meanwhile."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from lhpn_shared.consumers import Consumers
from lhpn_shared.runtime import Background, TaskState, readiness_checks
from lhpn_shared.settings import ServiceSettings
from tests.support.fake_amqp import FakeBroker, FakeChannel


def background(stall_seconds: float = 60.0) -> Background:
    settings = ServiceSettings(service_name="svc", consumer_stall_seconds=stall_seconds)
    return Background(settings, FakeBroker(), Consumers(), backoff=(0.05, 0.2))  # type: ignore[arg-type]


async def until(condition: Any, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met"
        await asyncio.sleep(0.01)


async def ready(bg: Background) -> dict[str, bool]:
    checks = readiness_checks(bg.broker, lambda: None, bg)
    return {name: await check() for name, check in checks.items() if name in ("tasks", "consumers")}


async def test_a_task_that_fails_is_logged_with_its_traceback_and_started_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bg = background()
    runs = 0
    forever = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs <= 2:
            raise RuntimeError(f"broken run {runs}")
        await forever.wait()

    with caplog.at_level(logging.ERROR, logger="lhpn.runtime"):
        bg.start(flaky, "flusher", forever=True)
        await until(lambda: runs == 3)
    failures = [r for r in caplog.records if r.getMessage().startswith("background task failed")]
    assert [r.exc_info[1].args[0] for r in failures if r.exc_info] == [
        "broken run 1",
        "broken run 2",
    ]
    assert {r.__dict__["task"] for r in failures} == {"svc-flusher"}
    (task,) = bg.tasks()
    assert (task.state, task.restarts) == (TaskState.running, 2)
    assert await ready(bg) == {"tasks": True, "consumers": True}
    await bg.stop()


async def test_while_a_failed_task_waits_to_start_again_the_service_is_not_ready() -> None:
    bg = background()
    bg.first_backoff = bg.max_backoff = 30.0

    async def broken() -> None:
        raise RuntimeError("broken")

    bg.start(broken, "relay", forever=True)
    await until(lambda: bg.down() == ["svc-relay"])
    assert await ready(bg) == {"tasks": False, "consumers": True}
    await bg.stop()  # a task waiting to restart does not hold the shutdown up


async def test_a_task_that_must_run_for_ever_and_returns_is_started_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bg = background()
    runs = 0

    async def returns_early() -> None:
        nonlocal runs
        runs += 1
        if runs > 1:
            await asyncio.Event().wait()

    with caplog.at_level(logging.ERROR, logger="lhpn.runtime"):
        bg.start(returns_early, "scheduler", forever=True)
        await until(lambda: runs == 2)
    assert any("ended unexpectedly" in r.getMessage() for r in caplog.records)
    await bg.stop()


async def test_a_one_off_step_runs_until_it_gets_through_then_what_waits_for_it_starts() -> None:
    bg = background()
    attempts, started = 0, asyncio.Event()

    async def prepare() -> None:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise ValueError("not yet")

    async def consumer() -> None:
        started.set()
        await asyncio.Event().wait()

    prepared = bg.start(prepare, "prepare")
    bg.start(consumer, "consumer", forever=True, after=prepared)
    assert await asyncio.wait_for(prepared, 5) is True
    await asyncio.wait_for(started.wait(), 5)
    assert attempts == 3
    assert {t.name: t.state for t in bg.tasks()} == {
        "svc-prepare": TaskState.done,
        "svc-consumer": TaskState.running,
    }
    await bg.stop()


async def test_a_coroutine_that_fails_cannot_be_started_again_and_leaves_the_service_not_ready(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bg = background()

    async def broken() -> None:
        raise RuntimeError("broken")

    with caplog.at_level(logging.ERROR, logger="lhpn.runtime"):
        task = bg.start(broken(), "warm-up")
        assert await asyncio.wait_for(task, 5) is False
    assert bg.down() == ["svc-warm-up"]
    assert caplog.records[0].exc_info is not None
    await bg.stop()


async def test_a_task_whose_consumer_holds_deliveries_without_progress_is_started_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bg = background(stall_seconds=0.3)
    progress = bg.consumers.queue("svc.events")
    channel = FakeChannel()
    held = channel.deliver(b"{}")
    runs = 0

    async def stuck_flusher() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            progress.received(held)
            await asyncio.Event().wait()  # e.g. an ack waiting on a dead connection
        progress.settled(held)  # the new run requeues what the stuck one held
        await asyncio.Event().wait()

    with caplog.at_level(logging.ERROR, logger="lhpn.runtime"):
        bg.start(stuck_flusher, "flusher", forever=True, consumer=progress)
        await until(lambda: bg.stalled() == ["svc.events"])
        assert (await ready(bg))["consumers"] is False
        await until(lambda: runs == 2)
    assert any("made no progress" in r.getMessage() for r in caplog.records)
    assert await ready(bg) == {"tasks": True, "consumers": True}
    await bg.stop()


async def test_stopping_lets_work_that_can_finish_by_itself_finish() -> None:
    bg = background()
    finish, finished = asyncio.Event(), asyncio.Event()

    async def relay() -> None:
        await finish.wait()
        finished.set()

    async def idle() -> None:
        await asyncio.Event().wait()

    bg.start(relay, "relay", forever=True, stop=finish.set)
    bg.start(idle, "idle", forever=True)
    await until(lambda: all(t.state is TaskState.running for t in bg.tasks()))
    await asyncio.wait_for(bg.stop(), 5)
    assert finished.is_set()
    assert list(bg.tasks()) == []

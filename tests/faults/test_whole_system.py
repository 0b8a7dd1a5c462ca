"""Nothing lost, nothing doubled, whatever fails (issue 12): the whole platform takes a known
stream of about 20,000 events while its consumers are killed, its broker restarted, its database
stopped for 20 seconds, its mail server refuses connections and a webhook answers 500 — and ends
exactly where the stream says it must.

The seed (`--fault-seed N` or `FAULT_SEED=N`; a new one otherwise) fixes the stream and where each
fault strikes; it is printed at the start and in the failure message, and the same seed sends the
same stream with the same faults at the same points of it again. `FAULT_EVENTS` makes the stream
smaller while working on the suite.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from lhpn_shared.clock import LOCAL_TZ
from tests.faults.checks import (
    check_cases,
    check_dead_letters,
    check_deliveries,
    check_intake,
    check_operator_command,
    deliveries_final,
    open_deadlines,
    reference_data_everywhere,
    set_contacts,
    settled,
    stored_cases,
    sweep,
)
from tests.faults.driver import Driver, Endpoints, Tokens
from tests.faults.harness import Harness, schedule
from tests.faults.recount import compare_aggregation
from tests.faults.stack import SHUTDOWN_GRACE_SECONDS, FaultStack, fault_stack
from tests.faults.stream import make_stream
from tests.integration.aggregation.streams import answers
from tests.support.broker_node import BrokerNode
from tests.unit.aggregation.generated import Generated

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

EVENTS = int(os.environ.get("FAULT_EVENTS", "20000"))
SWEEPS = [
    datetime(2021, 4, 20, 8, tzinfo=LOCAL_TZ),
    datetime(2021, 7, 20, 8, tzinfo=LOCAL_TZ),
]
"""the instants the test sweeps reminders as of, after the stream"""


@pytest.mark.timeout(1200)
async def test_the_whole_platform_ends_exactly_where_the_stream_says_whatever_fails_meanwhile(
    fault_seed: int, broker_node: BrokerNode, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        with capsys.disabled():
            print(f"[faults {time.strftime('%H:%M:%S')}] {line}", flush=True)

    began = time.monotonic()
    stream = make_stream(fault_seed, EVENTS)
    faults = schedule(fault_seed, len(SWEEPS))
    say(
        f"fault seed {fault_seed} (again: --fault-seed {fault_seed}): {stream.messages} messages "
        f"{stream.counts()}, faults "
        + ", ".join(f"{f.label()} at {f.at:.0%}" if f.at < 1 else f.label() for f in faults)
    )
    problems: list[str] = []
    async with fault_stack(broker_node, tmp_path, say) as stack:
        try:
            await _run(stack, stream, faults, fault_seed, say, problems)
        except BaseException as exc:
            problems.append(f"{type(exc).__name__}: {exc}")
            raise AssertionError(_failure(fault_seed, problems, lines, stack)) from exc
        if problems:
            raise AssertionError(_failure(fault_seed, problems, lines, stack))
    say(f"passed in {time.monotonic() - began:.0f} s")


async def _run(
    stack: FaultStack,
    stream: object,
    faults: list,  # type: ignore[type-arg]
    seed: int,
    say: Callable[[str], None],
    problems: list[str],
) -> None:
    from tests.faults.stream import Stream

    assert isinstance(stream, Stream)
    tokens = Tokens()
    started = time.monotonic()
    await reference_data_everywhere(stack, tokens, stream)
    await set_contacts(stack, tokens, stream)
    say(f"platform up with its reference data and contacts in {time.monotonic() - started:.0f} s")

    endpoints = Endpoints(
        intake=stack.url("intake"),
        cases=stack.url("cases"),
        system_url=stack.vhost.system.url,
        system_user=stack.vhost.system.user,
        stranger_url=stack.stranger.url,
        stranger_user=stack.stranger.user,
    )
    driver = Driver(stream, endpoints, tokens)
    harness = Harness(
        seed,
        faults,
        stack.supervisor,
        stack.node,
        stack.mongo,
        stack.mail,
        stack.webhook,
        say,
        shutdown_grace=SHUTDOWN_GRACE_SECONDS,
    )
    sending = asyncio.create_task(driver.run())
    await harness.during_stream(lambda: driver.share, sending)
    sent = driver.stats.finished - driver.stats.started
    say(
        f"stream sent in {sent:.0f} s ({stream.messages / sent:.0f} messages/s), "
        f"retries {dict(driver.stats.retries)}, answers {dict(driver.accepted)}"
    )
    settling = await settled(stack)
    await harness.close_stream_window()
    say(f"settled {settling:.0f} s after the stream: every queue drained, every outbox empty")
    problems += [f"{f.what} [{f.entity}]: {f.detail}" for f in driver.stats.failures]
    problems += harness.problems

    problems += await check_intake(stack, tokens, stream)
    cases = await stored_cases(stack, tokens)
    problems += check_cases(cases, stream)
    problems += await check_dead_letters(stack, tokens, stream)
    problems += await check_operator_command(stack, tokens)
    say(
        f"dead letters checked ({len(stream.expected.dead_letters)} sent), then listed and one "
        "replayed with lhpn dead-letters"
    )

    # reminders: sweeps as of chosen instants while the mail server and a webhook fail
    sweeping = time.monotonic()
    windows = []
    for n, as_of in enumerate(SWEEPS):
        windows += await harness.before_sweep(n)
        result = await sweep(stack, tokens, as_of)
        sent_now = len(result["notifications"])
        say(f"sweep as of {as_of:%Y-%m-%d}: {result['planned']} due, {sent_now} deliveries")
    await asyncio.gather(*windows)
    sends = await deliveries_final(stack)
    say(f"{sends} sends delivered {time.monotonic() - sweeping:.0f} s after the first sweep")
    found, figures = check_deliveries(stack, stream, SWEEPS, open_deadlines(cases))
    problems += found
    say(f"deliveries: {figures}")

    # aggregation: every figure against the recount
    clock = {
        c["case_id"]: (
            c["overdue"],
            datetime.fromisoformat(c["next_due_at"]) if c.get("next_due_at") else None,
        )
        for c in cases
    }
    async with httpx.AsyncClient(base_url=stack.url("aggregation"), timeout=60) as http:
        got = await answers(http, tokens.admin(), Generated(stream.units, stream.plan))
    wrong, checked = compare_aggregation(stream, got, clock, datetime.now(UTC))
    problems += [f"aggregation: {w}" for w in wrong[:20]]
    total = sum(checked.values())
    say(f"aggregation: {total} figures compared {dict(checked)}, {len(wrong)} differ")
    for line in harness.report():
        say(line)


def _failure(seed: int, problems: list[str], lines: list[str], stack: FaultStack) -> str:
    return "\n".join(
        [
            f"fault seed {seed}: reproduce with `uv run pytest tests/faults --fault-seed {seed}` "
            f"(or FAULT_SEED={seed})",
            *problems[:40],
            "--- the run's log:",
            *lines[-60:],
            f"--- service logs: {stack.logs}",
        ]
    )

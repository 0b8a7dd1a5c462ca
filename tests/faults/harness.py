"""The faults, at points drawn from the seed, and what each one cost.

During the stream (at a share of the sends handed over):
- each consumer service killed with SIGKILL (its supervisor starts it again);
- each consumer service asked to stop with SIGTERM: it must exit 0 by itself within its
  `SHUTDOWN_GRACE_SECONDS` (plus the run command's margin) — having stopped consuming, finished
  what it held and published its outbox, which the final checks show: nothing lost —, and its
  supervisor starts it again;
- the private RabbitMQ node stopped and started again (its Erlang VM exits);
- DevMongo stopped with SIGSTOP for 20 seconds, then continued with SIGCONT.

SIGSTOP rather than a kill: a killed DevMongo refuses connections at once and is already covered
by the services' own tests (`kill -9` of the database); a stopped one keeps its port open and
answers nothing, so every client waits for its timeouts, and a write sent just before it stopped
is applied when it continues although its client already gave up — the case where an accepted
write could be lost or doubled. Its data directory and port stay the same.

During the sweeps: the SMTP server refuses connections for a while, and the webhook receiver
answers 500 for a while.

For each fault the log gives how long the platform was without it (`away`), how long after its
return every service answered ready again (`recovered`), and the deliveries consumers got again
(`redelivered`, from `lhpn_consumer_redelivered_total`) between its start and the next fault's.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import re
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from lhpn_cli.supervisor import STOP_MARGIN_SECONDS, Supervisor, describe
from tests.faults.infra import MailSink, PausableMongo, WebhookSink, restart_node
from tests.support.broker_node import BrokerNode

CONSUMERS = ("intake", "cases", "reminders", "aggregation")
STREAM_FAULTS = ("kill", "term", "broker", "database")
DATABASE_PAUSE_SECONDS = 20.0
_REDELIVERED = re.compile(r"^lhpn_consumer_redelivered_total\{[^}]*\} (\S+)$", re.M)


@dataclass(frozen=True)
class Fault:
    kind: str
    """kill | term | broker | database | smtp | webhook"""
    target: str = ""
    at: float = 0.0
    """share of the stream sent (kill, broker, database); for smtp and webhook: which sweep it
    begins with"""
    seconds: float = 0.0

    def label(self) -> str:
        return {
            "kill": f"SIGKILL {self.target}",
            "term": f"SIGTERM {self.target}",
            "broker": "RabbitMQ node restarted",
            "database": f"DevMongo SIGSTOP {self.seconds:g} s",
            "smtp": f"SMTP refuses {self.seconds:.1f} s",
            "webhook": f"webhook answers 500 {self.seconds:.1f} s",
        }[self.kind]


def schedule(seed: int, sweeps: int) -> list[Fault]:
    """The faults of a run, drawn from its seed: the stream's at least 3 % apart."""
    rng = random.Random(f"faults-{seed}")
    while True:
        kills = [Fault("kill", s, rng.uniform(0.05, 0.92)) for s in CONSUMERS]
        terms = [Fault("term", s, rng.uniform(0.05, 0.92)) for s in CONSUMERS]
        broker = Fault("broker", at=rng.uniform(0.15, 0.85))
        database = Fault("database", at=rng.uniform(0.15, 0.8), seconds=DATABASE_PAUSE_SECONDS)
        during = sorted([*kills, *terms, broker, database], key=lambda f: f.at)
        if all(b.at - a.at >= 0.03 for a, b in itertools.pairwise(during)):
            break
    smtp = Fault("smtp", at=rng.randrange(sweeps), seconds=round(rng.uniform(4, 10), 1))
    webhook = Fault("webhook", at=rng.randrange(sweeps), seconds=round(rng.uniform(4, 10), 1))
    return [*during, smtp, webhook]


@dataclass
class Outcome:
    fault: Fault
    share: float
    began: float
    away: float | None = None
    recovered: float | None = None
    redelivered: int | None = None
    note: str = ""

    def line(self) -> str:
        parts = [f"{self.share:6.1%}  {self.fault.label():<28}"]
        if self.away is not None:
            parts.append(f"away {self.away:5.1f} s")
        if self.recovered is not None:
            parts.append(f"ready again {self.recovered:5.1f} s after")
        if self.redelivered is not None:
            parts.append(f"{self.redelivered} deliveries redelivered")
        if self.note:
            parts.append(self.note)
        return "  ".join(parts)


@dataclass
class Harness:
    seed: int
    faults: list[Fault]
    supervisor: Supervisor
    node: BrokerNode
    mongo: PausableMongo
    mail: MailSink
    webhook: WebhookSink
    say: Callable[[str], None]
    shutdown_grace: float = 10.0
    """the services' SHUTDOWN_GRACE_SECONDS"""
    outcomes: list[Outcome] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """what a fault showed wrong at once (a SIGTERM not ending in a clean exit in time)"""
    _snapshots: list[dict[str, tuple[int | None, int]]] = field(default_factory=list)

    # ---- during the stream --------------------------------------------------------------------

    async def during_stream(self, progress: Callable[[], float], done: Awaitable[None]) -> None:
        """Run each stream fault once the stream has reached its share (all of them, whatever
        the stream does meanwhile), each in its own task, then wait for them."""
        running = []
        for fault in [f for f in self.faults if f.kind in STREAM_FAULTS]:
            while progress() < fault.at:
                await asyncio.sleep(0.05)
            self._snapshots.append(await self.redeliveries())
            outcome = Outcome(fault, progress(), time.monotonic())
            self.outcomes.append(outcome)
            self.say(f"fault at {outcome.share:.1%} of the stream: {fault.label()}")
            running.append(asyncio.create_task(self._run(outcome)))
        await asyncio.gather(*running)
        await done

    async def _run(self, outcome: Outcome) -> None:
        fault = outcome.fault
        if fault.kind == "kill":
            self.supervisor.send(fault.target, signal.SIGKILL)
            exits = await self._ready_again(fault.target, outcome.began)
            outcome.recovered = exits
        elif fault.kind == "term":
            self.supervisor.send(fault.target, signal.SIGTERM)
            exit_ = await self._exit_of(fault.target, outcome.began)
            outcome.away = exit_.exited_at - outcome.began
            outcome.note = f"exited with {describe(exit_.status)} {outcome.away:.1f} s after"
            bound = self.shutdown_grace + STOP_MARGIN_SECONDS
            if exit_.status != 0 or outcome.away > bound:
                self.problems.append(
                    f"SIGTERM {fault.target}: {describe(exit_.status)} after {outcome.away:.1f} s "
                    f"(a clean stop is status 0 within {bound:g} s)"
                )
            outcome.recovered = await self._ready_again(fault.target, outcome.began)
        elif fault.kind == "broker":
            outcome.away = await asyncio.to_thread(restart_node, self.node)
            back = time.monotonic()
            await self.all_ready()
            outcome.recovered = time.monotonic() - back
        elif fault.kind == "database":
            self.mongo.pause()
            try:
                await asyncio.sleep(fault.seconds)  # the outage itself, not a wait for a result
            finally:
                self.mongo.resume()
            back = time.monotonic()
            outcome.away = back - outcome.began
            await self.all_ready()
            outcome.recovered = time.monotonic() - back

    async def _exit_of(self, name: str, since: float) -> Any:
        """The supervisor's record of the program's first exit since `since`."""
        while True:
            for exit_ in self.supervisor.exits:
                if exit_.name == name and exit_.exited_at >= since:
                    return exit_
            await asyncio.sleep(0.1)

    async def _ready_again(self, name: str, since: float) -> float:
        """Seconds from the kill to its supervisor seeing it ready again."""
        while True:
            for exit_ in self.supervisor.exits:
                if exit_.name == name and exit_.exited_at >= since - 1 and exit_.ready_again_at:
                    return exit_.ready_again_at - since
            await asyncio.sleep(0.1)

    async def all_ready(self, within: float = 180) -> None:
        await self.supervisor.wait_ready(within=within)

    # ---- what it cost -------------------------------------------------------------------------

    async def redeliveries(self) -> dict[str, tuple[int | None, int]]:
        """Per service: its pid, and the deliveries it has been redelivered since it started."""
        out: dict[str, tuple[int | None, int]] = {}
        async with httpx.AsyncClient(timeout=3) as http:
            for program in self.supervisor.programs():
                count = 0
                try:
                    text = (await http.get(f"{program.url}/metrics")).text
                    count = int(sum(float(v) for v in _REDELIVERED.findall(text)))
                except httpx.HTTPError:
                    pass  # killed at this moment: its next process starts from 0
                out[program.name] = (self.supervisor.pid(program.name), count)
        return out

    async def close_stream_window(self) -> None:
        """After the stream settled: what each stream fault cost in redeliveries, counted from
        its start to the next one's (to the end for the last)."""
        self._snapshots.append(await self.redeliveries())
        stream = [o for o in self.outcomes if o.fault.kind in STREAM_FAULTS]
        for n, outcome in enumerate(stream):
            if n + 1 >= len(self._snapshots):
                break
            before, after = self._snapshots[n], self._snapshots[n + 1]
            total = 0
            for name, (pid, count) in after.items():
                was_pid, was = before.get(name, (None, 0))
                total += count - was if pid == was_pid else count
            outcome.redelivered = total

    # ---- during the sweeps --------------------------------------------------------------------

    async def before_sweep(self, index: int) -> list[asyncio.Task[None]]:
        """Start the mail and webhook faults that begin with this sweep."""
        tasks = []
        for fault in self.faults:
            if fault.kind in ("smtp", "webhook") and fault.at == index:
                outcome = Outcome(fault, 1.0, time.monotonic())
                self.outcomes.append(outcome)
                self.say(f"fault with sweep {index + 1}: {fault.label()}")
                tasks.append(asyncio.create_task(self._window(outcome)))
        return tasks

    async def _window(self, outcome: Outcome) -> None:
        fault = outcome.fault
        if fault.kind == "smtp":
            self.mail.refuse()
        else:
            self.webhook.failing = True
        try:
            await asyncio.sleep(fault.seconds)  # the outage itself
        finally:
            if fault.kind == "smtp":
                self.mail.accept()
            else:
                self.webhook.failing = False
        outcome.away = time.monotonic() - outcome.began

    def report(self) -> list[str]:
        lines = [f"fault seed {self.seed}"]
        lines += ["  " + o.line() for o in self.outcomes]
        return lines

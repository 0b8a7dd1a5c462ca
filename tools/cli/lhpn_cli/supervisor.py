"""The run command's supervisor: starts the services as processes (one or more replicas each),
restarts one that dies — after a pause that doubles, logged — instead of taking the whole
platform down, and stops them all within their shutdown grace when asked.

`deploy/run.sh` installs and starts the infrastructure, then runs

    python -m lhpn_cli.supervisor

which reads the same environment (below), starts the consumers, then intake, loads the default
data's second half through the operator command, then the portal, prints where everything
answers, and supervises until SIGINT or SIGTERM. Each service gets its own `RABBIT_URL` (its
broker user, password from `.data/broker/`), its port, and its log in `.data/logs/<name>.log`.

Environment: SERVICES (default: every service with a `__main__.py`), `<SERVICE>_PORT`,
`REPLICAS_<SERVICE>` (default 1; replica k answers on the port + 100 × (k − 1), logs to
`<service>-<k>.log`; consumers compete on their queue, and aggregation's queue has a single
active consumer, so its other replicas stand by), AGGREGATION_PARTITIONS (default 1; with N > 1
aggregation runs N replicas by default, replica k writing partition (k − 1) mod N, so
REPLICAS_AGGREGATION=2N gives each partition a standby), RABBIT_VHOST, BROKER_USER_PREFIX,
MONGO_URL, SHUTDOWN_GRACE_SECONDS (the services' own; the supervisor waits 5 s more before SIGKILL),
READY_TIMEOUT, LOAD_DEFAULT_2025, and every service setting, passed through.

The `Supervisor` class is what the fault suite runs the services with, too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx

STOP_MARGIN_SECONDS = 5.0
"""How much longer than a service's own shutdown grace the supervisor waits before SIGKILL."""
REPLICA_PORT_STEP = 100
DEFAULT_PORTS = {
    "portal": 8000,
    "intake": 8001,
    "cases": 8002,
    "reminders": 8003,
    "aggregation": 8004,
}


class StartFailed(RuntimeError):
    """A service exited before it was ever ready, or was not ready in time."""


@dataclass(frozen=True)
class Program:
    """One process to keep running: `python -m <service>` as a replica, say."""

    name: str
    """unique: the service's name, or `<service>-<k>` for its k-th replica"""
    argv: Sequence[str]
    env: Mapping[str, str]
    port: int
    log_path: Path
    stop_seconds: float = 25.0
    """from SIGTERM to SIGKILL"""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Exit:
    """One unexpected exit, and when the program answered ready again."""

    name: str
    status: int | None
    ran_seconds: float
    exited_at: float
    ready_again_at: float | None = None


@dataclass
class _Child:
    program: Program
    process: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    ever_ready: bool = False
    restarts: int = 0
    watcher: asyncio.Task[None] | None = field(default=None, repr=False)


class Supervisor:
    """Keeps programs running: each in its own session (a signal reaches it and its children),
    output appended to its log; one that exits unasked is started again after `first_backoff`
    seconds, doubling up to `max_backoff` (back to the first after a run of `healthy_after`)."""

    def __init__(
        self,
        *,
        first_backoff: float = 1.0,
        max_backoff: float = 30.0,
        healthy_after: float = 60.0,
        say: Callable[[str], None] = lambda line: print(f"supervisor: {line}", flush=True),
    ) -> None:
        self.first_backoff, self.max_backoff, self.healthy_after = (
            first_backoff,
            max_backoff,
            healthy_after,
        )
        self.say = say
        self.exits: list[Exit] = []
        """every unexpected exit, with the time it took to be ready again"""
        self._children: dict[str, _Child] = {}
        self._stopping = False

    # ---- starting ----------------------------------------------------------------------------

    async def start(self, program: Program) -> None:
        if program.name in self._children:
            raise ValueError(f"{program.name} is already supervised")
        child = _Child(program)
        self._children[program.name] = child
        await self._spawn(child)
        child.watcher = asyncio.create_task(self._watch(child), name=f"watch-{program.name}")

    async def _spawn(self, child: _Child) -> None:
        program = child.program
        program.log_path.parent.mkdir(parents=True, exist_ok=True)
        with program.log_path.open("ab") as log:
            child.process = await asyncio.create_subprocess_exec(
                *program.argv,
                env=dict(program.env),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        child.started_at = time.monotonic()

    async def _watch(self, child: _Child) -> None:
        delay = self.first_backoff
        while True:
            assert child.process is not None
            status = await child.process.wait()
            if self._stopping:
                return
            ran = time.monotonic() - child.started_at
            exit_ = Exit(child.program.name, status, round(ran, 3), time.monotonic())
            self.exits.append(exit_)
            if ran >= self.healthy_after:
                delay = self.first_backoff
            child.restarts += 1
            self.say(
                f"{child.program.name} exited ({describe(status)}) after {ran:.1f} s; "
                f"starting it again in {delay:g} s (restart {child.restarts}); "
                f"its log: {child.program.log_path}"
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_backoff)
            if self._stopping:
                return
            await self._spawn(child)
            asyncio.create_task(self._note_ready(child, exit_))  # noqa: RUF006 - bounded poll

    async def _note_ready(self, child: _Child, exit_: Exit) -> None:
        process = child.process
        async with httpx.AsyncClient(timeout=2) as http:
            while not self._stopping and process is child.process and process is not None:
                if process.returncode is not None:
                    return
                if await _ready(http, child.program):
                    exit_.ready_again_at = time.monotonic()
                    self.say(
                        f"{child.program.name} ready again "
                        f"{exit_.ready_again_at - exit_.exited_at:.1f} s after it exited"
                    )
                    return
                await asyncio.sleep(0.25)

    async def wait_ready(self, names: Iterable[str] | None = None, within: float = 120) -> None:
        """Until each program answers `/readyz` 200; `StartFailed` (with the end of its log)
        if one exits before it was ever ready, or is not ready `within` seconds."""
        waiting = {n: self._children[n] for n in (names or list(self._children))}
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(timeout=2) as http:
            while waiting:
                for name, child in list(waiting.items()):
                    if not child.ever_ready and child.restarts:
                        raise StartFailed(f"{name} exited at start:\n{tail(child.program)}")
                    if await _ready(http, child.program):
                        child.ever_ready = True
                        del waiting[name]
                if not waiting:
                    return
                if time.monotonic() > deadline:
                    raise StartFailed(
                        f"not ready after {within:g} s: {', '.join(waiting)}\n"
                        + "\n".join(tail(c.program) for c in waiting.values())
                    )
                await asyncio.sleep(0.3)

    # ---- state and faults --------------------------------------------------------------------

    def pid(self, name: str) -> int | None:
        process = self._children[name].process
        return process.pid if process is not None and process.returncode is None else None

    def send(self, name: str, sig: signal.Signals) -> int:
        """Signal the program's whole process group (e.g. SIGKILL, to see it restarted)."""
        pid = self.pid(name)
        if pid is None:
            raise ProcessLookupError(f"{name} is not running")
        os.killpg(pid, sig)
        return pid

    def programs(self) -> list[Program]:
        return [c.program for c in self._children.values()]

    # ---- stopping ----------------------------------------------------------------------------

    async def stop(self) -> dict[str, int | None]:
        """SIGTERM to every program at once; SIGKILL to any still running after its
        `stop_seconds`. Returns each one's exit status (negative: the signal that ended it)."""
        self._stopping = True
        for child in self._children.values():
            if child.watcher is not None:
                child.watcher.cancel()
        running = [
            c
            for c in self._children.values()
            if c.process is not None and c.process.returncode is None
        ]
        if running:
            self.say(f"stopping {', '.join(c.program.name for c in running)}")
        for child in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(cast_pid(child), signal.SIGTERM)

        async def finish(child: _Child) -> None:
            assert child.process is not None
            began = time.monotonic()
            try:
                await asyncio.wait_for(child.process.wait(), timeout=child.program.stop_seconds)
            except TimeoutError:
                self.say(
                    f"{child.program.name} still running {child.program.stop_seconds:g} s "
                    "after SIGTERM: killing it"
                )
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(cast_pid(child), signal.SIGKILL)
                await child.process.wait()
            self.say(
                f"{child.program.name} stopped ({describe(child.process.returncode)}) "
                f"in {time.monotonic() - began:.1f} s"
            )

        await asyncio.gather(*(finish(c) for c in running))
        return {
            name: c.process.returncode if c.process is not None else None
            for name, c in self._children.items()
        }


def cast_pid(child: _Child) -> int:
    assert child.process is not None
    return child.process.pid


def describe(status: int | None) -> str:
    if status is None:
        return "still running"
    if status < 0:
        return f"signal {signal.Signals(-status).name}"
    return f"status {status}"


def tail(program: Program, lines: int = 20) -> str:
    try:
        text = program.log_path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        text = []
    return f"--- {program.log_path}\n" + "\n".join(text)


async def _ready(http: httpx.AsyncClient, program: Program) -> bool:
    try:
        return (await http.get(f"{program.url}/readyz")).status_code == 200
    except httpx.HTTPError:
        return False


# ---- the run command -------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSettings:
    """What `deploy/run.sh` hands over, from the environment."""

    repo: Path
    data: Path
    services: list[str]
    env: Mapping[str, str]

    @classmethod
    def from_environment(cls, repo: Path) -> RunSettings:
        env = dict(os.environ)
        found = sorted(
            p.parent.name for p in (repo / "services").glob("*/*/__main__.py") if p.parent.name
        )
        chosen = env.get("SERVICES", "").split() or found
        unknown = [s for s in chosen if s not in found]
        if unknown:
            raise SystemExit(f"run: no such service: {', '.join(unknown)}")
        return cls(repo, Path(env.get("LHPN_DATA", repo / ".data")), chosen, env)

    def port(self, service: str) -> int:
        return int(self.env.get(f"{service.upper()}_PORT") or DEFAULT_PORTS[service])

    def partitions(self, service: str) -> int:
        """Aggregation's `AGGREGATION_PARTITIONS` (1 for every other service)."""
        if service != "aggregation":
            return 1
        value = self.env.get("AGGREGATION_PARTITIONS", "1")
        if not value.isdigit() or int(value) < 1:
            raise SystemExit("run: AGGREGATION_PARTITIONS must be a whole number ≥ 1")
        return int(value)

    def replicas(self, service: str) -> int:
        """`REPLICAS_<SERVICE>`; for aggregation at least one per partition (its default)."""
        value = self.env.get(f"REPLICAS_{service.upper()}", str(self.partitions(service)))
        if not value.isdigit() or int(value) < 1:
            raise SystemExit(f"run: REPLICAS_{service.upper()} must be a whole number ≥ 1")
        return int(value)

    def stop_seconds(self) -> float:
        return float(self.env.get("SHUTDOWN_GRACE_SECONDS", "20")) + STOP_MARGIN_SECONDS

    def rabbit_url(self, service: str) -> str | None:
        """The service's own broker URL (its password never printed); None for the portal."""
        user = self.env.get("BROKER_USER_PREFIX", "lhpn-") + service
        password_file = self.data / "broker" / f"{user}.password"
        if not password_file.exists():
            return None
        vhost = self.env.get("RABBIT_VHOST", "/")
        path = "" if vhost == "/" else quote(vhost, safe="")
        password = quote(password_file.read_text().strip(), safe="")
        return f"amqp://{user}:{password}@127.0.0.1:5672/{path}"

    def programs(self, service: str) -> list[Program]:
        out = []
        for k in range(1, self.replicas(service) + 1):
            port = self.port(service) + REPLICA_PORT_STEP * (k - 1)
            name = service if k == 1 else f"{service}-{k}"
            env = {**self.env, f"{service.upper()}_PORT": str(port)}
            if self.partitions(service) > 1:  # replica k writes partition k−1 (mod N)
                env["AGGREGATION_PARTITION"] = str((k - 1) % self.partitions(service))
            if (url := self.rabbit_url(service)) is not None:
                env["RABBIT_URL"] = url
            if service == "portal":
                for other in ("intake", "cases", "reminders", "aggregation"):
                    env.setdefault(f"{other.upper()}_URL", f"http://127.0.0.1:{self.port(other)}")
            out.append(
                Program(
                    name,
                    [sys.executable, "-m", service],
                    env,
                    port,
                    self.data / "logs" / f"{name}.log",
                    self.stop_seconds(),
                )
            )
        return out


def _port_in_use(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


async def run(settings: RunSettings) -> int:
    """Start in phases — consumers, intake (then the 2025 default data), the portal — print
    where everything answers, then supervise until SIGINT/SIGTERM."""
    supervisor = Supervisor()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    timeout = float(settings.env.get("READY_TIMEOUT", "120"))
    consumers = [s for s in settings.services if s not in ("intake", "portal")]
    phases = [consumers, [s for s in ("intake",) if s in settings.services]]
    phases.append([s for s in ("portal",) if s in settings.services])
    began = time.monotonic()
    try:
        for phase in phases:
            programs = [p for s in phase for p in settings.programs(s)]
            for p in programs:
                if _port_in_use(p.port):
                    raise StartFailed(
                        f"port {p.port} ({p.name}) is in use: stop what uses it or set "
                        f"{p.name.split('-')[0].upper()}_PORT"
                    )
            for p in programs:
                await supervisor.start(p)
            starting = asyncio.ensure_future(
                supervisor.wait_ready([p.name for p in programs], timeout)
            )
            interrupted = asyncio.ensure_future(stop.wait())
            await asyncio.wait({starting, interrupted}, return_when=asyncio.FIRST_COMPLETED)
            if stop.is_set():
                starting.cancel()
                return 130
            interrupted.cancel()
            starting.result()
            if phase == ["intake"]:
                await _load_default_2025(settings)
        _print_summary(settings, time.monotonic() - began)
        await stop.wait()
        return 0
    except StartFailed as exc:
        print(f"run: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        await supervisor.stop()


async def _load_default_2025(settings: RunSettings) -> None:
    """The default data, second half: Phú Yên (loaded by intake from its 2021 file) ends on
    30/06/2025 and continues in the new Đắk Lắk (from the maintained packages, through intake's
    API, so every service gets the units). A second run finds it done and changes nothing."""
    if settings.env.get("LOAD_DEFAULT_2025", "1") != "1":
        return
    print("run: default data: Phú Yên's successor area in Đắk Lắk from 1 July 2025", flush=True)
    log_path = settings.data / "logs" / "lhpn-units.log"
    lhpn = Path(sys.executable).with_name("lhpn")
    env = {**settings.env, "LHPN_INTAKE_URL": f"http://127.0.0.1:{settings.port('intake')}"}
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            str(lhpn),
            *("units", "load", "--national", "2025", "--province", "66"),
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
        if await process.wait() != 0:
            program = Program("lhpn-units", [], {}, 0, log_path)
            raise StartFailed(f"loading the 2025 default data failed:\n{tail(program)}")


def _print_summary(settings: RunSettings, seconds: float) -> None:
    logs = settings.data / "logs"
    print(f"\nrun: ready in {seconds:.0f} s", flush=True)
    first = sorted(settings.services, key=lambda s: (s != "portal", s != "intake", s))
    for service in first:  # the address people open first
        for p in settings.programs(service):
            if service == "portal":
                print(f"  {p.name:<14} {p.url}/   (sign in there)   log: {p.log_path}")
            else:
                print(f"  {p.name:<14} {p.url}/docs   {p.url}/asyncapi.json   log: {p.log_path}")
    mongo = settings.env.get("MONGO_URL", "mongodb://127.0.0.1:27017/")
    print(f"  {'MongoDB':<14} {mongo} (DevMongo, data in {settings.data / 'mongo'})")
    prefix = settings.env.get("BROKER_USER_PREFIX", "lhpn-")
    vhost = settings.env.get("RABBIT_VHOST", "/")
    print(
        f"  {'RabbitMQ':<14} amqp://127.0.0.1:5672/ vhost {vhost}, users {prefix}<service> "
        f"(passwords: {settings.data / 'broker'}/)"
    )
    if "intake" in settings.services:
        user = settings.env.get("ADMIN_USERNAME", "admin")
        password = (
            "<your ADMIN_PASSWORD>"
            if settings.env.get("ADMIN_PASSWORD")
            else "admin (development default)"
        )
        print(f"  {'login':<14} {user} / {password}")
    print(f"Logs in {logs}. Ctrl-C stops everything.", flush=True)


def main() -> None:
    repo = Path(os.environ.get("LHPN_REPO", Path.cwd()))
    sys.exit(asyncio.run(run(RunSettings.from_environment(repo))))


if __name__ == "__main__":
    main()

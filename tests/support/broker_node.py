"""A private RabbitMQ node for tests that stop, restart or break the broker.

The machine's node (`rabbit@<host>`, port 5672) is shared by every test session and every
engineer on the machine: nothing may stop or reconfigure it. A test that needs a broker outage
starts its own node of the same Debian package instead, entirely under a temporary directory:

- its own node name `lhpn-t<hex>@localhost`, AMQP port and Erlang distribution port (free
  loopback ports), its own Mnesia, log and pid file, an empty plugin list and an empty config;
- its own `HOME`, so its Erlang cookie is its own and `rabbitmqctl -n <node>` reaches only it.

It registers its name with the machine's `epmd` like any node; stopping it never stops `epmd`.
Vhosts and users on it are made by the same function as on the shared node
(`tests.support.infra.RabbitVhost.create(node=...)`: the topology, the services' restricted
users, the operator and an inbound system, imported as definitions), so a service runs against
it exactly as against the shared node.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.infra import RabbitNode, RabbitVhost, free_port

SBIN = Path("/usr/lib/rabbitmq/bin")
"""The package's own scripts: the `/usr/sbin` wrappers switch to the `rabbitmq` user, whose
home holds the shared node's cookie — the private node runs as the caller with its own."""


PREFIX = "lhpn-rabbit-"
OWNER, NAME = "owner.pid", "node.name"
"""files in a node's directory: the test process that started it, and the node's name"""


def _run_bounded(cmd: list[str], env: dict[str, str], timeout: float) -> tuple[int, str, str]:
    """Run `cmd` in a session of its own; past `timeout`, kill the whole session."""
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return -1, out, f"{err}\n(killed after {timeout} s)"
    return proc.returncode, out, err


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def reap_orphans(base: Path | None = None) -> list[str]:
    """Stop the private nodes whose test process is gone (a session killed before its
    teardown, e.g. by a timeout), and remove their directories. Only directories this module
    made (`lhpn-rabbit-*` with an owner file) are looked at, and a process is signalled only
    if it is the Erlang VM running from that directory. Returns the node names stopped."""
    stopped = []
    for d in Path(base or tempfile.gettempdir()).glob(f"{PREFIX}*"):
        try:
            owner = int((d / OWNER).read_text())
            name = (d / NAME).read_text().strip()
        except (OSError, ValueError):
            continue
        if _alive(owner):
            continue
        try:
            pid = int((d / "node.pid").read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            cmdline, pid = b"", 0
        if pid and b"beam" in cmdline and str(d).encode() in cmdline:  # its HOME is `d`
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            stopped.append(name)
        shutil.rmtree(d, ignore_errors=True)
    return stopped


@dataclass(frozen=True)
class QueueStats:
    ready: int
    """messages waiting to be delivered"""
    unacked: int
    """messages delivered to a consumer and not acknowledged yet"""


class BrokerNode:
    """One private RabbitMQ node; `start()` it, `stop()` it (and its directory goes)."""

    def __init__(self, base: Path | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=PREFIX, dir=base))
        self.name = f"lhpn-t{secrets.token_hex(4)}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        while self.dist_port == self.port:
            self.dist_port = free_port()
        self.pid_file = self.dir / "node.pid"
        (self.dir / OWNER).write_text(f"{os.getpid()}\n")
        (self.dir / NAME).write_text(f"{self.name}\n")
        (self.dir / "enabled_plugins").write_text("[].\n")
        (self.dir / "rabbitmq.conf").write_text("")
        (self.dir / "rabbitmq-env.conf").write_text("")
        self.node = RabbitNode(port=self.port, ctl_env=self.env())

    # ---- environment -------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """What every command about this node runs with (server, `rabbitmqctl`,
        `deploy/rabbitmq.sh`): all of the node's state under `self.dir`; `rabbitmqctl` found
        first on the PATH is the package's own script, which targets `RABBITMQ_NODENAME`."""
        d = self.dir
        return {
            **os.environ,
            "HOME": str(d),  # the Erlang cookie: this node's own
            "PATH": f"{SBIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_PID_FILE": str(self.pid_file),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
            "RABBITMQ_CONF_ENV_FILE": str(d / "rabbitmq-env.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(d / "advanced.config"),
        }

    def ctl(self, *args: str, timeout: float = 60) -> str:
        """`rabbitmqctl -n <this node> -q ...`; raises with its output when it fails or takes
        longer than `timeout` (then the command and every process it started are killed: an
        Erlang CLI left behind would hold its pipes open and hang the caller for good)."""
        code, out, err = _run_bounded(
            [str(SBIN / "rabbitmqctl"), "-n", self.name, "-q", *args], self.env(), timeout
        )
        if code != 0:
            raise RuntimeError(
                f"rabbitmqctl {' '.join(args)} on {self.name} failed ({code}):\n"
                f"{out}\n{err}\n{self.log_tail()}"
            )
        return out

    def log_tail(self, chars: int = 3000) -> str:
        logs = sorted((self.dir / "log").glob("*.log"))
        return "".join(p.read_text(errors="replace")[-chars:] for p in logs)

    @property
    def url(self) -> str:
        """The default vhost with the guest account (allowed from loopback)."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    # ---- life cycle ----------------------------------------------------------------------------

    def start(self, timeout: float = 90) -> None:
        """Start the node detached and wait until it accepts connections."""
        subprocess.run(
            [str(SBIN / "rabbitmq-server"), "-detached"],
            env=self.env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=30,
            check=True,
        )
        deadline = time.monotonic() + timeout
        while not self.pid_file.exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} wrote no pid file:\n{self.log_tail()}")
            time.sleep(0.1)
        self.ctl("wait", "--timeout", str(int(timeout)), str(self.pid_file), timeout=timeout + 10)
        self.ctl("await_startup", "--timeout", str(int(timeout)), timeout=timeout + 10)

    def stop_app(self) -> None:
        """Stop the RabbitMQ application (the Erlang node stays up): every client connection
        is closed by the broker, as in an operator's `rabbitmqctl stop_app`."""
        self.ctl("stop_app")

    def start_app(self) -> None:
        self.ctl("start_app")
        self.ctl("await_startup")

    def restart(self) -> None:
        """`stop_app` then `start_app`: durable queues, bindings and persistent messages stay."""
        self.stop_app()
        self.start_app()

    def ensure_running(self) -> None:
        """Start the application again if a test left it stopped."""
        try:
            self.ctl("await_startup", "--timeout", "2", timeout=15)
        except RuntimeError:
            self.start_app()

    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        """Stop the node (waiting for its process to exit) and remove its directory."""
        pid = self.pid()
        try:
            if pid is not None:
                self.ctl("stop", str(self.pid_file), timeout=60)
        except (RuntimeError, subprocess.TimeoutExpired):
            if pid is not None and Path(f"/proc/{pid}").exists():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)

    # ---- vhosts and queues -------------------------------------------------------------------

    def vhost(self) -> RabbitVhost:
        """A fresh vhost and user on this node (the same helper as on the shared node)."""
        return RabbitVhost.create(node=self.node)

    def queue_stats(self, vhost: str = "/", timeout: float = 45) -> dict[str, QueueStats]:
        """Messages ready and unacknowledged per queue of `vhost` (RuntimeError when the node
        does not answer within `timeout`)."""
        out = self.ctl(
            "list_queues",
            "--timeout",
            "30",
            "-p",
            vhost,
            "name",
            "messages_ready",
            "messages_unacknowledged",
            "--formatter",
            "json",
            timeout=timeout,
        )
        return {
            q["name"]: QueueStats(int(q["messages_ready"]), int(q["messages_unacknowledged"]))
            for q in json.loads(out or "[]")
        }


@contextlib.contextmanager
def started_broker_node() -> Iterator[BrokerNode]:
    """A started private node, stopped and removed afterwards (and, first, the nodes that
    earlier killed sessions left running)."""
    reap_orphans()
    node = BrokerNode()
    try:
        node.start()
        yield node
    finally:
        node.stop()

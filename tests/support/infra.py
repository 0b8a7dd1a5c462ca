"""The real infrastructure the integration and e2e tests run against.

- RabbitMQ: the machine's broker (the test command installs and starts it); each test session
  gets a fresh vhost with the whole topology, one user per service (restricted as in
  production, `lhpn_shared.broker_accounts`), an operator user for the tests' own listeners and
  an inbound system; all deleted afterwards, so durable queues never leak between runs. Users
  are global in RabbitMQ: their names carry the session's `BROKER_USER_PREFIX`.
  A test that stops or restarts the broker uses a private node instead
  (`tests/support/broker_node.py`); its vhosts are made by the same `RabbitVhost.create`.
- MongoDB: the project's DevMongo launcher (mongo-java-server) on a free loopback port with
  its data under a temporary directory; tests can `kill -9` and restart it.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from lhpn_shared.broker_accounts import (
    Account,
    definitions,
    operator_account,
    service_accounts,
    system_account,
)
from lhpn_shared.contracts.owners import SERVICES
from lhpn_shared.inbound import INBOUND_ROUTING_KEYS, InboundBinding, format_inbound_systems

REPO = Path(__file__).resolve().parents[2]
DEVMONGO = REPO / "deploy" / "devmongo.sh"
RABBITMQ = REPO / "deploy" / "rabbitmq.sh"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(*args: str | Path, stdin: str | None = None, env: Mapping[str, str] | None = None) -> str:
    proc = subprocess.run(
        [str(a) for a in args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env=None if env is None else dict(env),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


@dataclass
class DevMongo:
    port: int
    data_dir: Path

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    def start(self) -> None:
        _run(DEVMONGO, "start", str(self.port), self.data_dir)

    def stop(self) -> None:
        _run(DEVMONGO, "stop", self.data_dir)

    def pid(self) -> int | None:
        try:
            return int((self.data_dir / "devmongo.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def kill9(self) -> None:
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                # not our child (setsid): wait until it is gone
                for _ in range(200):
                    if not Path(f"/proc/{pid}").exists():
                        break
                    import time

                    time.sleep(0.05)


def _amqp_url(user: str, password: str, vhost: str, port: int) -> str:
    user, password, vhost = (quote(x, safe="") for x in (user, password, vhost))
    return f"amqp://{user}:{password}@127.0.0.1:{port}/{vhost}"


def session_prefix() -> str:
    """The broker-user prefix of this test session (tests/conftest.py sets it)."""
    return os.environ.get("BROKER_USER_PREFIX") or f"lhpn-t{secrets.token_hex(4)}-"


@dataclass(frozen=True)
class RabbitNode:
    """Which RabbitMQ node a vhost lives on: its AMQP port, and the environment under which
    `deploy/rabbitmq.sh` reaches it (None: the machine's shared node)."""

    port: int = 5672
    ctl_env: Mapping[str, str] | None = field(default=None, compare=False)


SHARED_NODE = RabbitNode()


@dataclass
class InboundSystem:
    """Another system's broker account, bound to a unit subtree and routing keys."""

    binding: InboundBinding
    password: str
    url: str

    @property
    def user(self) -> str:
        return self.binding.broker_user


@dataclass
class RabbitVhost:
    """A fresh vhost with the system's topology and its users, as `broker_accounts` makes them.

    - `url`: the operator (every permission): the tests' listeners, drains and purges;
    - `url_for(service)`: a service's own, restricted user (`<prefix><service>`);
    - `system`: an inbound system bound to the province root (54) and every inbound key;
      `add_system(...)` makes others; `inbound_systems` is the INBOUND_SYSTEMS value for all.
    """

    vhost: str
    prefix: str
    operator: str
    operator_password: str
    passwords: dict[str, str]
    systems: dict[str, InboundSystem] = field(default_factory=dict)
    node: RabbitNode = SHARED_NODE

    @property
    def port(self) -> int:
        return self.node.port

    @property
    def url(self) -> str:
        return _amqp_url(self.operator, self.operator_password, self.vhost, self.port)

    def user_for(self, service: str) -> str:
        return f"{self.prefix}{service}"

    def url_for(self, service: str, port: int | None = None) -> str:
        """The service's own URL (`port`: e.g. a proxy's in front of the broker)."""
        user, password = self.user_for(service), self.passwords[service]
        return _amqp_url(user, password, self.vhost, port or self.port)

    @property
    def system(self) -> InboundSystem:
        return self.systems[f"{self.prefix}system"]

    @property
    def inbound_systems(self) -> str:
        return format_inbound_systems([s.binding for s in self.systems.values()])

    @classmethod
    def create(cls, prefix: str | None = None, node: RabbitNode = SHARED_NODE) -> RabbitVhost:
        """The one place test vhosts and their users are made, on the shared node and on a
        private one (`tests/support/broker_node.py`) alike."""
        prefix = prefix or session_prefix()
        v = cls(
            vhost=prefix.rstrip("-"),
            prefix=prefix,
            operator=f"{prefix}operator",
            operator_password=secrets.token_urlsafe(18),
            passwords={s: secrets.token_urlsafe(18) for s in SERVICES},
            node=node,
        )
        accounts = [
            *service_accounts(prefix, v.passwords),
            operator_account(v.operator, v.operator_password, administrator=False),
        ]
        v._import(accounts, with_topology=True)
        v.add_system("system", "54", INBOUND_ROUTING_KEYS)
        return v

    def add_system(self, name: str, unit_id: str, routing_keys: frozenset[str]) -> InboundSystem:
        """A new inbound system account `<prefix><name>` (pass its binding to the services
        through `inbound_systems`)."""
        binding = InboundBinding(f"{self.prefix}{name}", unit_id, frozenset(routing_keys))
        password = secrets.token_urlsafe(18)
        self._import([system_account(binding, password)], with_topology=False)
        system = InboundSystem(
            binding, password, _amqp_url(binding.broker_user, password, self.vhost, self.port)
        )
        self.systems[binding.broker_user] = system
        return system

    def _import(self, accounts: list[Account], *, with_topology: bool) -> None:
        doc = definitions(self.vhost, accounts, with_topology=with_topology)
        _run(RABBITMQ, "import-definitions", stdin=json.dumps(doc), env=self.node.ctl_env)

    def delete(self) -> None:
        users = [self.operator, *(self.user_for(s) for s in SERVICES), *self.systems]
        _run(RABBITMQ, "vhost-delete", self.vhost, *users, env=self.node.ctl_env)

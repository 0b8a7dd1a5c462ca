"""The real infrastructure the integration and e2e tests run against.

- RabbitMQ: the machine's broker (the test command installs and starts it); each test session
  gets a fresh vhost and user, deleted afterwards, so durable queues never leak between runs.
- MongoDB: the project's DevMongo launcher (mongo-java-server) on a free loopback port with
  its data under a temporary directory; tests can `kill -9` and restart it.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEVMONGO = REPO / "deploy" / "devmongo.sh"
RABBITMQ = REPO / "deploy" / "rabbitmq.sh"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(*args: str | Path) -> str:
    proc = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=180, check=False
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


@dataclass
class RabbitVhost:
    vhost: str
    user: str
    password: str

    @property
    def url(self) -> str:
        return f"amqp://{self.user}:{self.password}@127.0.0.1:5672/{self.vhost}"

    @classmethod
    def create(cls) -> RabbitVhost:
        tag = secrets.token_hex(4)
        v = cls(vhost=f"lhpn-test-{tag}", user=f"lhpn-test-{tag}", password=secrets.token_hex(12))
        _run(RABBITMQ, "vhost-create", v.vhost, v.user, v.password)
        return v

    def delete(self) -> None:
        _run(RABBITMQ, "vhost-delete", self.vhost, self.user)

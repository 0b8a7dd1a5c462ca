"""What the fault suite runs the platform against, each able to fail on demand:

- `MailSink`: a real SMTP server (aiosmtpd) on loopback that keeps every message; `refuse()`
  closes its port (connections refused) until `accept()` opens it again on the same port;
- `WebhookSink`: an HTTP receiver on loopback that keeps every reminder posted to it; while
  `failing`, it answers 500 and keeps nothing;
- `PausableMongo`: a DevMongo of its own (port, data directory) that can be stopped with SIGSTOP
  and continued with SIGCONT — the process stays, its port stays open, nothing answers;
- `restart_node`: the private RabbitMQ node stopped (its Erlang VM exits) and started again on
  the same ports and data directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from tests.support.broker_node import BrokerNode
from tests.support.infra import DevMongo, free_port


@dataclass(frozen=True)
class Mail:
    notification_id: str
    recipients: tuple[str, ...]
    step: str
    subject_ref: str


class MailSink:
    """aiosmtpd on 127.0.0.1 keeping every message (by its `X-LHPN-Notification-Id`)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[Mail] = []
        self._controller: Controller | None = None
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = message_from_bytes(envelope.content, policy=policy.default)
        with self._lock:
            self.received.append(
                Mail(
                    notification_id=str(msg["X-LHPN-Notification-Id"]),
                    recipients=tuple(envelope.rcpt_tos),
                    step=str(msg["X-LHPN-Step"]),
                    subject_ref=str(msg["X-LHPN-Subject-Ref"]),
                )
            )
        return "250 Message accepted"

    def accept(self) -> None:
        """Listen (again) on the same port."""
        if self._controller is None:
            self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
            self._controller.start()

    def refuse(self) -> None:
        """Close the port: every connection is refused until `accept()`."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def mails(self) -> list[Mail]:
        with self._lock:
            return list(self.received)


@dataclass
class WebhookSink:
    """Receives every unit's webhook on `http://127.0.0.1:<port>/hook/<unit_id>`."""

    port: int = field(default_factory=free_port)
    failing: bool = False
    """answer 500 and keep nothing"""
    received: list[dict[str, Any]] = field(default_factory=list)
    refused: int = 0
    """requests answered 500"""
    _server: ThreadingHTTPServer | None = None

    def url(self, unit_id: str) -> str:
        return f"http://127.0.0.1:{self.port}/hook/{unit_id}"

    def start(self) -> None:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if sink.failing:
                    sink.refused += 1
                    self.send_response(500)
                    self.end_headers()
                    return
                sink.received.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


class PausableMongo(DevMongo):
    """A DevMongo that can be stopped and continued (SIGSTOP/SIGCONT) by its own pid."""

    def pause(self) -> None:
        pid = self.pid()
        assert pid is not None, "DevMongo is not running"
        os.kill(pid, signal.SIGSTOP)

    def resume(self) -> None:
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def new_mongo(base: Path) -> PausableMongo:
    data = base / "mongo"
    data.mkdir(parents=True, exist_ok=True)
    return PausableMongo(port=free_port(), data_dir=data)


def restart_node(node: BrokerNode, timeout: float = 90) -> float:
    """Stop the private node's Erlang VM (every connection drops, the port closes), start it
    again on the same ports and data; returns the seconds it was away."""
    began = time.monotonic()
    node.ctl("stop", str(node.pid_file), timeout=60)
    node.pid_file.unlink(missing_ok=True)
    node.start(timeout=timeout)
    return time.monotonic() - began

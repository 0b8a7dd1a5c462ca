"""The run command's supervisor (`lhpn_cli.supervisor`): a program that dies is started again,
its pause doubling and each restart logged, and stopping never hangs on one that ignores
SIGTERM. Small stand-in programs (an HTTP server answering `/readyz`) take the services' place."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from lhpn_cli.supervisor import Program, Supervisor
from tests.support.http import eventually
from tests.support.infra import free_port

pytestmark = pytest.mark.e2e

SERVER = """
import signal, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
if sys.argv[1] == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
class Ready(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"{}")
    def log_message(self, *a):
        pass
HTTPServer(("127.0.0.1", int(sys.argv[2])), Ready).serve_forever()
"""


def program(name: str, mode: str, tmp_path: Path, stop_seconds: float = 10) -> Program:
    port = free_port()
    return Program(
        name,
        [sys.executable, "-c", SERVER, mode, str(port)],
        {"PATH": "/usr/bin:/bin"},
        port,
        tmp_path / f"{name}.log",
        stop_seconds=stop_seconds,
    )


async def test_a_program_that_dies_is_started_again_each_time_after_a_doubling_logged_pause(
    tmp_path: Path,
) -> None:
    lines: list[str] = []
    supervisor = Supervisor(first_backoff=0.2, say=lines.append)
    await supervisor.start(program("intake", "plain", tmp_path))
    try:
        await supervisor.wait_ready(["intake"], within=30)
        for restart in (1, 2):
            pid = supervisor.send("intake", signal.SIGKILL)

            async def back(old: int = pid, restart: int = restart) -> bool:
                new = supervisor.pid("intake")
                return new is not None and new != old and len(supervisor.exits) >= restart

            await eventually(back, timeout=30, interval=0.1)
            await supervisor.wait_ready(["intake"], within=30)
    finally:
        statuses = await supervisor.stop()

    assert [e.status for e in supervisor.exits] == [-signal.SIGKILL, -signal.SIGKILL]
    restarts = [line for line in lines if "starting it again" in line]
    assert "in 0.2 s (restart 1)" in restarts[0] and "in 0.4 s (restart 2)" in restarts[1]
    assert "signal SIGKILL" in restarts[0] and "intake.log" in restarts[0]
    assert statuses == {"intake": -signal.SIGTERM}  # asked to stop: not started again


async def test_stopping_kills_a_program_that_ignores_sigterm_after_its_grace_and_never_hangs(
    tmp_path: Path,
) -> None:
    lines: list[str] = []
    supervisor = Supervisor(say=lines.append)
    await supervisor.start(program("stubborn", "stubborn", tmp_path, stop_seconds=1))
    await supervisor.start(program("plain", "plain", tmp_path))
    await supervisor.wait_ready(["stubborn", "plain"], within=30)

    statuses = await supervisor.stop()

    assert statuses == {"stubborn": -signal.SIGKILL, "plain": -signal.SIGTERM}
    assert any("stubborn still running 1 s after SIGTERM: killing it" in line for line in lines)
    assert supervisor.exits == []  # neither was started again

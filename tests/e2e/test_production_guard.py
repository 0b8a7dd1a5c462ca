"""`python -m <service>` as an operator runs it: without ENV (production) and with the
development defaults it exits at once, saying which settings to change."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.infra import REPO

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("service", ["intake", "cases", "reminders", "aggregation"])
def test_a_service_started_without_env_and_with_development_defaults_refuses_to_start(
    service: str,
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ENV"}
    env["RABBIT_URL"] = "amqp://guest:guest@127.0.0.1:1/"  # nothing is contacted
    proc = subprocess.run(
        [sys.executable, "-m", service],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.startswith("cannot start: the settings are refused")
    for named in (
        "ADMIN_PASSWORD is the development default",
        "JWT_SECRET is the development default",
        "RABBIT_URL uses RabbitMQ's guest account",
        "MONGO_URL has no credentials",
    ):
        assert named in proc.stderr
    if service == "cases":
        assert "CASE_KEYS holds the development key" in proc.stderr
    assert "guest:guest" not in proc.stderr and "Traceback" not in proc.stderr

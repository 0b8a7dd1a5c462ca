"""Session-wide real infrastructure for integration and e2e tests (see tests/support/infra.py).

Unit tests use none of it: the fixtures start only when a test asks for them.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.infra import DevMongo, RabbitVhost, free_port


def pytest_configure(config: pytest.Config) -> None:
    """Through the environment, so every settings object and service process of the session
    gets them: development must be asked for (ENV unset counts as production), and broker
    users are global in RabbitMQ, so this session's carry a prefix of their own."""
    os.environ["ENV"] = "development"
    os.environ["BROKER_USER_PREFIX"] = f"lhpn-t{secrets.token_hex(4)}-"


@pytest.fixture(scope="session")
def devmongo() -> Iterator[DevMongo]:
    data = Path(tempfile.mkdtemp(prefix="lhpn-devmongo-"))
    server = DevMongo(port=free_port(), data_dir=data)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="session")
def rabbit() -> Iterator[RabbitVhost]:
    vhost = RabbitVhost.create()
    try:
        yield vhost
    finally:
        vhost.delete()


@pytest.fixture
def db_name() -> str:
    """A database of its own for each test: no shared state between tests."""
    return f"t_{uuid.uuid4().hex[:12]}"

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

from tests.support.broker_node import BrokerNode, started_broker_node
from tests.support.infra import DevMongo, RabbitVhost, free_port


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fault-seed",
        type=int,
        default=None,
        help="seed of the whole-system fault suite (tests/faults): its stream and where each "
        "fault strikes; default FAULT_SEED, else a new one (printed, and in a failure's message)",
    )


def fault_seed_of(config: pytest.Config) -> int:
    """The run's seed, chosen once per session."""
    seed = config.getoption("--fault-seed")
    if seed is None:
        seed = int(os.environ.get("FAULT_SEED") or secrets.randbelow(1_000_000))
        config.option.fault_seed = seed
    return int(seed)


def pytest_report_header(config: pytest.Config) -> str:
    return f"fault seed: {fault_seed_of(config)} (tests/faults; reproduce with --fault-seed)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With test workers, the longest tests' files first, the fault suite before them: the test
    command's pytest-xdist workers (`--dist loadfile --no-loadscope-reorder`) take files in
    this order, so the long ones run beside the rest rather than alone at the end. A run on one
    process keeps the collection order (quick failures first)."""
    if not getattr(config.option, "numprocesses", None):
        return

    ranks: dict[Path, int] = {}
    for item in items:
        rank = (
            0 if item.get_closest_marker("faults") else 1 if item.get_closest_marker("slow") else 2
        )
        ranks[item.path] = min(rank, ranks.get(item.path, 2))
    items.sort(key=lambda item: ranks[item.path])  # stable: a file's tests keep their order


@pytest.fixture(scope="session")
def fault_seed(pytestconfig: pytest.Config) -> int:
    return fault_seed_of(pytestconfig)


def pytest_configure(config: pytest.Config) -> None:
    """Through the environment, so every settings object and service process of the session
    gets them: development must be asked for (ENV unset counts as production), and broker
    users are global in RabbitMQ, so this session's carry a prefix of their own (each
    pytest-xdist worker runs this too, so each has its own)."""
    os.environ["ENV"] = "development"
    os.environ["BROKER_USER_PREFIX"] = f"lhpn-t{secrets.token_hex(4)}-"
    # pytest-xdist's workers start after this and inherit the environment: one seed for all
    os.environ["FAULT_SEED"] = str(fault_seed_of(config))


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


@pytest.fixture(scope="session")
def broker_node() -> Iterator[BrokerNode]:
    """A private RabbitMQ node for the tests that stop or restart the broker (never the shared
    one). Started on first use, about 6 s; stopped at the end of the session."""
    with started_broker_node() as node:
        yield node


@pytest.fixture
def private_rabbit(broker_node: BrokerNode) -> Iterator[RabbitVhost]:
    """A fresh vhost and user on the private node, its application running again afterwards
    whatever the test did to it."""
    broker_node.ensure_running()
    vhost = broker_node.vhost()
    try:
        yield vhost
    finally:
        broker_node.ensure_running()
        vhost.delete()


@pytest.fixture
def db_name() -> str:
    """A database of its own for each test: no shared state between tests."""
    return f"t_{uuid.uuid4().hex[:12]}"

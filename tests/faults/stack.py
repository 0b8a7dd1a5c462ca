"""The whole platform as processes for the fault suite: intake, cases, reminders and aggregation
started by the run command's own supervisor (`lhpn_cli.supervisor`, which starts a killed one
again), each as its own broker user on a fresh vhost of the private RabbitMQ node, one DevMongo of
its own on a free port (a database per service), a real SMTP server and a webhook receiver on
loopback. The portal is left out: it holds no state and consumes nothing."""

from __future__ import annotations

import contextlib
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from pymongo import AsyncMongoClient

from lhpn_cli.supervisor import Program, Supervisor
from lhpn_shared.inbound import INBOUND_ROUTING_KEYS, format_inbound_systems
from tests.faults.infra import MailSink, PausableMongo, WebhookSink, new_mongo
from tests.support.broker_node import BrokerNode, QueueStats
from tests.support.infra import InboundSystem, RabbitVhost, free_port

SERVICES = ("cases", "reminders", "aggregation", "intake")
SHUTDOWN_GRACE_SECONDS = 10


@dataclass
class FaultStack:
    node: BrokerNode
    vhost: RabbitVhost
    stranger: InboundSystem
    """a broker account of another system that nobody bound: its messages are refused"""
    mongo: PausableMongo
    mail: MailSink
    webhook: WebhookSink
    supervisor: Supervisor
    databases: dict[str, str]
    logs: Path

    def url(self, service: str) -> str:
        (program,) = [p for p in self.supervisor.programs() if p.name == service]
        return program.url

    def queue_stats(self) -> dict[str, QueueStats]:
        return self.node.queue_stats(self.vhost.vhost)

    async def pending_outbox(self) -> dict[str, int]:
        """Documents whose outbox is not published yet, per service database."""
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
            self.mongo.url, serverSelectionTimeoutMS=5000
        )
        out: dict[str, int] = {}
        try:
            for service, name in self.databases.items():
                db = client[name]
                for coll in await db.list_collection_names():
                    n = await db[coll].count_documents({"outbox_pending": True})
                    if n:
                        out[f"{service}.{coll}"] = n
        finally:
            await client.close()
        return out


def _environment(
    vhost: RabbitVhost, mongo: PausableMongo, mail: MailSink, databases: dict[str, str]
) -> Callable[[str], dict[str, str]]:
    common = {
        "MONGO_URL": mongo.url,
        "MONGO_TIMEOUT_MS": "2000",
        "INBOUND_SYSTEMS": format_inbound_systems([vhost.system.binding]),
        "RELAY_IDLE_SECONDS": "0.2",
        "SHUTDOWN_GRACE_SECONDS": str(SHUTDOWN_GRACE_SECONDS),
        "LOG_LEVEL": "WARNING",  # every event handled would be a line
        # reminders: the test runs the sweeps; quick retries; loopback webhooks
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(mail.port),
        "SMTP_TIMEOUT_SECONDS": "5",
        "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
        "WEBHOOK_TIMEOUT_SECONDS": "5",
        "SWEEP_INTERVAL_SECONDS": "0",
        "DELIVERY_POLL_SECONDS": "0.5",
        "DELIVERY_LEASE_SECONDS": "30",
        "RETRY_BASE_SECONDS": "1",
        "RETRY_FACTOR": "2",
        "RETRY_CAP_SECONDS": "4",
        "RETRY_MAX_ATTEMPTS": "15",
    }

    def env(service: str) -> dict[str, str]:
        import os

        return {
            **os.environ,  # ENV=development and this session's BROKER_USER_PREFIX
            **common,
            "RABBIT_URL": vhost.url_for(service),
            "MONGO_DB": databases[service],
        }

    return env


@contextlib.asynccontextmanager
async def fault_stack(
    node: BrokerNode, base: Path, say: Callable[[str], None]
) -> AsyncIterator[FaultStack]:
    node.ensure_running()
    vhost = node.vhost()
    stranger = vhost.add_system("stranger", "54", INBOUND_ROUTING_KEYS)
    mongo = new_mongo(base)
    mongo.start()
    mail, webhook = MailSink(), WebhookSink()
    mail.accept()
    webhook.start()
    tag = uuid.uuid4().hex[:6]
    databases = {s: f"f{tag}_{s}" for s in SERVICES}
    env = _environment(vhost, mongo, mail, databases)
    supervisor = Supervisor(first_backoff=1.0, say=lambda line: say(f"supervisor: {line}"))
    logs = base / "logs"
    try:
        for phase in (SERVICES[:-1], SERVICES[-1:]):  # consumers, then intake
            for name in phase:
                port = free_port()
                await supervisor.start(
                    Program(
                        name,
                        [sys.executable, "-m", name],
                        {**env(name), f"{name.upper()}_PORT": str(port)},
                        port,
                        logs / f"{name}.log",
                        stop_seconds=SHUTDOWN_GRACE_SECONDS + 5,
                    )
                )
            await supervisor.wait_ready(phase, within=120)
        yield FaultStack(node, vhost, stranger, mongo, mail, webhook, supervisor, databases, logs)
    finally:
        mongo.resume()
        await supervisor.stop()
        mongo.stop()
        mail.refuse()
        webhook.stop()
        node.ensure_running()
        vhost.delete()

"""The four services running in one test process against one broker and one database server,
each with its real lifespan and its own database — the whole event flow without starting
processes (the e2e tier does that)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI

from aggregation.app import create_app as aggregation_app
from aggregation.settings import AggregationSettings
from cases.app import create_app as cases_app
from cases.settings import CasesSettings
from intake.app import create_app as intake_app
from intake.settings import IntakeSettings
from lhpn_shared.auth import Principal, Role, issue_token
from lhpn_shared.settings import ServiceSettings
from reminders.app import create_app as reminders_app
from reminders.settings import RemindersSettings
from tests.support.http import eventually, running
from tests.support.infra import RabbitVhost

SERVICES = ("intake", "cases", "reminders", "aggregation")


@dataclass
class Stack:
    apps: dict[str, FastAPI]
    """the first replica of each service"""
    clients: dict[str, httpx.AsyncClient]
    settings: dict[str, ServiceSettings]
    replicas: dict[str, list[tuple[FastAPI, httpx.AsyncClient]]] = field(default_factory=dict)
    """every replica of each service (app, client), the first one first"""

    def admin(self) -> dict[str, str]:
        """An admin's bearer token (every service verifies the same development secret)."""
        principal = Principal(subject="test-admin", role=Role.admin)
        token, _ = issue_token(self.settings["intake"], principal, datetime.now(UTC))
        return {"Authorization": f"Bearer {token}"}

    async def readiness(self) -> dict[str, Any]:
        """Each service's (each replica's: `name#2`…) `/readyz` answer (status code, checks)."""
        out = {}
        clients = {
            name if i == 0 else f"{name}#{i + 1}": client
            for name, replicas in self.replicas.items()
            for i, (_, client) in enumerate(replicas)
        } or self.clients
        for name, client in clients.items():
            r = await client.get("/readyz")
            out[name] = (r.status_code, r.json().get("checks"))
        return out

    async def all_ready(self) -> bool:
        return all(code == 200 for code, _ in (await self.readiness()).values())

    async def pages(self, service: str, path: str, **params: str) -> list[dict[str, Any]]:
        """Every item of a paged list route."""
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            query = {**params, "limit": "1000", **({"cursor": cursor} if cursor else {})}
            r = await self.clients[service].get(
                f"/api/v1/{path}", params=query, headers=self.admin()
            )
            assert r.status_code == 200, (service, path, r.text)
            items += r.json()["items"]
            cursor = r.json()["next_cursor"]
            if cursor is None:
                return items


def stack_settings(
    rabbit: RabbitVhost, mongo_url: str, **common: Any
) -> dict[str, ServiceSettings]:
    """Settings for the four services: one vhost, each service as its own broker user (intake
    and cases knowing the vhost's inbound systems), one database server, a database each."""
    base: dict[str, Any] = {
        "mongo_url": mongo_url,
        "mongo_timeout_ms": 1500,
        "relay_idle_seconds": 0.2,
        **common,
    }
    tag = uuid.uuid4().hex[:8]

    def own(service: str) -> dict[str, Any]:
        return {**base, "rabbit_url": rabbit.url_for(service), "mongo_db": f"t_{tag}_{service}"}

    inbound = {"inbound_systems": rabbit.inbound_systems}
    return {
        "intake": IntakeSettings(**own("intake"), **inbound),
        "cases": CasesSettings(**own("cases"), **inbound),
        "reminders": RemindersSettings(**own("reminders"), sweep_interval_seconds=0),
        "aggregation": AggregationSettings(**own("aggregation"), retry_delay_seconds=0.3),
    }


@contextlib.asynccontextmanager
async def running_stack(
    settings: dict[str, ServiceSettings], replicas: int = 1
) -> AsyncIterator[Stack]:
    """Start the consumers first, then intake (which announces the default data), each one
    ready before the next, as the run command does; `replicas` of each service, sharing its
    settings (its database, its broker user and queues) as replicas in compose do."""
    factories = {
        "intake": intake_app,
        "cases": cases_app,
        "reminders": reminders_app,
        "aggregation": aggregation_app,
    }
    started: dict[str, list[tuple[FastAPI, httpx.AsyncClient]]] = {n: [] for n in SERVICES}
    async with contextlib.AsyncExitStack() as stack:
        for name in ("cases", "reminders", "aggregation", "intake"):
            for _ in range(replicas):
                app = factories[name](settings[name])  # type: ignore[operator]
                client = await stack.enter_async_context(running(app))

                async def ready(c: httpx.AsyncClient = client) -> bool:
                    return (await c.get("/readyz")).status_code == 200

                await eventually(ready, timeout=60)
                started[name].append((app, client))
        yield Stack(
            {n: started[n][0][0] for n in SERVICES},
            {n: started[n][0][1] for n in SERVICES},
            settings,
            started,
        )

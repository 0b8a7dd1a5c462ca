"""Run a service app in-process (its real lifespan) and talk to it over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
from fastapi import FastAPI


@contextlib.asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


async def login(client: httpx.AsyncClient, username: str, password: str) -> dict[str, str]:
    r = await client.post("/api/v1/auth/token", data={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def eventually(
    probe: Callable[[], Awaitable[Any]], timeout: float = 10.0, interval: float = 0.05
) -> Any:
    """Poll `probe` until it returns a truthy value (or raise with the last one)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")


async def metric(client: httpx.AsyncClient, name: str, **labels: str) -> float:
    """The sum of a service's `/metrics` samples called `name` with these labels."""
    total = 0.0
    for line in (await client.get("/metrics")).text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        sample, value = line.rsplit(" ", 1)
        if all(f'{k}="{v}"' in sample for k, v in labels.items()):
            total += float(value)
    return total


async def outbox_published(client: httpx.AsyncClient, timeout: float = 20) -> None:
    """Wait until nothing the service wrote is left to publish (its outbox gauges are 0): with
    `EventListener.flush` after it, every event it made has reached the listener."""

    async def empty() -> bool:
        text = (await client.get("/metrics")).text
        pending = [
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("lhpn_outbox_pending_documents{")
        ]
        return bool(pending) and not any(pending)

    await eventually(empty, timeout=timeout)

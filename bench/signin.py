"""The sign-in route under a burst (a script, not a test).

    uv run python bench/signin.py [--burst 100]

Needs RabbitMQ running (deploy/rabbitmq.sh) and the DevMongo jars (deploy/devmongo.sh build);
starts its own DevMongo, a fresh vhost and intake as a process (default settings: 1 argon2
hash at a time, 10 failures per username and 100 per address in 15 minutes).

Rows:
- baseline: one argon2 verification in this process, one after the other (the cost of a
  sign-in with nothing around it, measured in the same run);
- burst of right passwords: `--burst` users signing in at once: sign-ins/s, latency, and the
  latency of `GET /healthz` sampled meanwhile (hashing runs in a worker thread, one at a time);
- burst of wrong passwords for one username: how many were checked (401) before the rest were
  refused without checking (429);
- burst of wrong passwords for distinct usernames from one address: the same per address.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from argon2 import PasswordHasher

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.infra import DevMongo, RabbitVhost, free_port
from tests.support.process import ServiceProcess


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


async def sign_in(http: httpx.AsyncClient, username: str, password: str) -> tuple[int, float]:
    t0 = time.perf_counter()
    r = await http.post("/api/v1/auth/token", data={"username": username, "password": password})
    return r.status_code, time.perf_counter() - t0


async def burst(
    http: httpx.AsyncClient, n: int, creds: list[tuple[str, str]]
) -> tuple[list[int], list[float], float, list[float]]:
    """n concurrent sign-ins; /healthz sampled every 20 ms meanwhile."""
    health: list[float] = []
    done = asyncio.Event()

    async def sample() -> None:
        while not done.is_set():
            t0 = time.perf_counter()
            await http.get("/healthz")
            health.append(time.perf_counter() - t0)
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    t0 = time.perf_counter()
    results = await asyncio.gather(*(sign_in(http, *creds[i % len(creds)]) for i in range(n)))
    elapsed = time.perf_counter() - t0
    done.set()
    await sampler
    return [s for s, _ in results], [t for _, t in results], elapsed, health


async def create_users(http: httpx.AsyncClient, users: list[tuple[str, str]]) -> None:
    r = await http.post("/api/v1/auth/token", data={"username": "admin", "password": "admin"})
    admin = {"Authorization": f"Bearer {r.json()['access_token']}"}
    for username, password in users:
        body = {"username": username, "password": password, "role": "commune_staff"}
        r = await http.post("/api/v1/users", json=body | {"unit_id": "22015"}, headers=admin)
        assert r.status_code == 201, r.text


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--burst", type=int, default=100)
    n = ap.parse_args().burst

    hasher = PasswordHasher()
    stored = hasher.hash("admin")
    t0 = time.perf_counter()
    for _ in range(20):
        hasher.verify(stored, "admin")
    verify_ms = (time.perf_counter() - t0) / 20 * 1000

    data = Path(tempfile.mkdtemp(prefix="lhpn-bench-signin-"))
    mongo = DevMongo(port=free_port(), data_dir=data / "mongo")
    mongo.start()
    rabbit = RabbitVhost.create()
    env = {"MONGO_URL": mongo.url, "MONGO_DB": "bench_signin", "RABBIT_URL": rabbit.url}
    intake = ServiceProcess("intake", env | {"LOG_LEVEL": "WARNING"}, data)
    try:
        intake.start()
        users = [(f"staff{i}", "mat-khau-1") for i in range(n)]
        async with httpx.AsyncClient(base_url=intake.url, timeout=120) as http:
            await create_users(http, users)
        runs = []
        for local, creds in (
            ("127.0.0.2", users),
            ("127.0.0.3", [("admin", "not-the-password")]),
            ("127.0.0.4", [(f"nobody{i}", "x") for i in range(n + 20)]),
        ):
            # each burst from its own loopback address: the address limit starts afresh
            transport = httpx.AsyncHTTPTransport(
                local_address=local, limits=httpx.Limits(max_connections=n + 10)
            )
            async with httpx.AsyncClient(
                base_url=intake.url, timeout=120, transport=transport
            ) as http:
                runs.append(await burst(http, len(creds), creds))
        ok, wrong_user, wrong_addr = runs
    finally:
        intake.stop()
        rabbit.delete()
        mongo.stop()
        shutil.rmtree(data, ignore_errors=True)

    print(f"\nbaseline: one argon2 verification in-process: {verify_ms:.0f} ms")
    statuses, latencies, elapsed, health = ok
    print(
        f"\n{n} users signing in at once: {statuses.count(200)} × 200 in {elapsed:.1f} s "
        f"= {n / elapsed:.1f}/s ({n / elapsed * verify_ms / 1000:.2f} × one verification at "
        f"a time); latency p50 {p(latencies, 50):.2f} s, p95 {p(latencies, 95):.2f} s, "
        f"max {max(latencies):.2f} s; /healthz meanwhile p50 {p(health, 50) * 1000:.0f} ms, "
        f"p95 {p(health, 95) * 1000:.0f} ms, max {max(health) * 1000:.0f} ms "
        f"({len(health)} samples)"
    )
    for label, (statuses, latencies, elapsed, _) in (
        ("wrong password for one username", wrong_user),
        ("wrong passwords, distinct usernames, one address", wrong_addr),
    ):
        other = len(statuses) - statuses.count(401) - statuses.count(429)
        print(
            f"{len(statuses)} concurrent {label}: {statuses.count(401)} checked (401), "
            f"{statuses.count(429)} refused unchecked (429), other {other}; "
            f"{elapsed:.1f} s in all, p50 {p(latencies, 50):.2f} s"
        )


if __name__ == "__main__":
    asyncio.run(main())

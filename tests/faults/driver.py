"""Sends the stream to the running platform as its clients would, through whatever fails.

- on `lhpn.inbound`: persistent, with publisher confirms, each message published again until the
  broker confirms it (so through a broker restart some arrive twice: consumers dedupe); a few
  publishers at once, each entity's messages always through the same one, in order;
- over HTTP: a few workers, each entity's requests always through the same worker, in order; a
  request is sent again while the answer is a connection error, a timeout or a 503 (the same
  event id, case id: the platform must take it once); a transition answered 409 is checked
  against the case (already applied by an attempt whose answer was lost?).

`progress` counts the sends handed over, which is what the fault schedule follows.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aio_pika
import httpx

from lhpn_shared.auth import Principal, Role, issue_token
from lhpn_shared.settings import ServiceSettings
from tests.faults.stream import Amqp, HttpCase, HttpEvent, Send, Stream, Transitions, staff_role

HTTP_WORKERS = 8
AMQP_WORKERS = 8
CASE_WORKERS = 12
RETRY_PAUSE = 0.5
RETRYABLE = {502, 503, 504}


@dataclass
class Endpoints:
    intake: str
    cases: str
    system_url: str
    """AMQP URL of the bound inbound system"""
    system_user: str
    stranger_url: str
    stranger_user: str


@dataclass
class Failure:
    what: str
    entity: str
    detail: str


@dataclass
class DriverStats:
    retries: Counter[str] = field(default_factory=Counter)
    """why a send was tried again: publish, 503, connection, timeout…"""
    failures: list[Failure] = field(default_factory=list)
    """answers that contradict the stream (a good message refused, a bad one accepted…)"""
    started: float = 0.0
    finished: float = 0.0


class Tokens:
    """Bearer tokens signed with the development secret every service of the run shares."""

    def __init__(self) -> None:
        self.settings = ServiceSettings()
        self._cache: dict[tuple[str, str | None], dict[str, str]] = {}

    def of(self, role: Role, unit_id: str | None = None) -> dict[str, str]:
        key = (role.value, unit_id)
        if key not in self._cache:
            principal = Principal(
                subject=f"faults-{role.value}-{unit_id}", role=role, unit_id=unit_id
            )
            token, _ = issue_token(self.settings, principal, datetime.now(UTC))
            self._cache[key] = {"Authorization": f"Bearer {token}"}
        return self._cache[key]

    def admin(self) -> dict[str, str]:
        return self.of(Role.admin)


class Driver:
    def __init__(self, stream: Stream, endpoints: Endpoints, tokens: Tokens) -> None:
        self.stream = stream
        self.endpoints = endpoints
        self.tokens = tokens
        self.units = {u.unit_id: u for u in stream.units}
        self.progress = 0
        self.stats = DriverStats()
        self.accepted: Counter[str] = Counter()
        """answers by kind: 'accepted', 'duplicate' (POST /events), 201/200 (cases)…"""

    @property
    def share(self) -> float:
        return self.progress / len(self.stream.sends)

    async def run(self) -> None:
        self.stats.started = time.monotonic()
        queues: list[asyncio.Queue[Send | None]] = [
            asyncio.Queue(maxsize=16) for _ in range(HTTP_WORKERS)
        ]
        case_gate = asyncio.Semaphore(CASE_WORKERS)
        cases: list[asyncio.Task[None]] = []
        publishing: list[asyncio.Queue[Amqp | None]] = [
            asyncio.Queue(maxsize=16) for _ in range(AMQP_WORKERS)
        ]
        async with contextlib.AsyncExitStack() as stack:
            http = await stack.enter_async_context(httpx.AsyncClient(timeout=30))
            endpoints = self.endpoints
            mine = [
                await stack.enter_async_context(
                    _Publisher(endpoints.system_url, endpoints.system_user, self.stats)
                )
                for _ in range(AMQP_WORKERS)
            ]
            other = await stack.enter_async_context(
                _Publisher(endpoints.stranger_url, endpoints.stranger_user, self.stats)
            )
            workers = [asyncio.create_task(self._worker(http, q)) for q in queues]
            workers += [
                asyncio.create_task(self._publisher(p, other, q))
                for p, q in zip(mine, publishing, strict=True)
            ]
            for send in self.stream.sends:
                if isinstance(send, Amqp):
                    await publishing[_slot(send.entity, AMQP_WORKERS)].put(send)
                elif isinstance(send, Transitions):
                    await case_gate.acquire()
                    cases.append(asyncio.create_task(self._transitions(http, send, case_gate)))
                else:
                    await queues[_slot(send.entity, HTTP_WORKERS)].put(send)
                self.progress += 1
            for q in [*queues, *publishing]:
                await q.put(None)
            await asyncio.gather(*workers, *cases)
        self.stats.finished = time.monotonic()

    async def _publisher(
        self, mine: _Publisher, other: _Publisher, queue: asyncio.Queue[Amqp | None]
    ) -> None:
        while (send := await queue.get()) is not None:
            await (mine if send.publisher == "system" else other).publish(send)

    # ---- HTTP ----------------------------------------------------------------------------------

    async def _worker(self, http: httpx.AsyncClient, queue: asyncio.Queue[Send | None]) -> None:
        while (send := await queue.get()) is not None:
            if isinstance(send, HttpEvent):
                await self._post_event(http, send)
            elif isinstance(send, HttpCase):
                await self._open_case(http, send)

    async def _request(
        self, http: httpx.AsyncClient, method: str, url: str, **kw: Any
    ) -> httpx.Response:
        """The answer, sending again while the service is away or its database is."""
        while True:
            try:
                r = await http.request(method, url, **kw)
            except httpx.TimeoutException:
                self.stats.retries["http timeout"] += 1
            except httpx.TransportError:
                self.stats.retries["http connection"] += 1
            else:
                if r.status_code not in RETRYABLE:
                    return r
                self.stats.retries[f"http {r.status_code}"] += 1
            await asyncio.sleep(RETRY_PAUSE)

    async def _post_event(self, http: httpx.AsyncClient, send: HttpEvent) -> None:
        r = await self._request(
            http,
            "POST",
            f"{self.endpoints.intake}/api/v1/events",
            json=send.envelope,
            headers=self.tokens.admin(),
        )
        if r.status_code != send.status:
            self._fail("POST /api/v1/events", send.entity, f"{r.status_code} {r.text[:300]}")
        elif r.status_code == 202:
            self.accepted[r.json()["status"]] += 1

    async def _open_case(self, http: httpx.AsyncClient, send: HttpCase) -> None:
        unit = self.units[send.unit_id]
        r = await self._request(
            http,
            "POST",
            f"{self.endpoints.cases}/api/v1/cases",
            json=send.body,
            headers=self.tokens.of(Role(staff_role(unit)), unit.unit_id),
        )
        if r.status_code not in (200, 201):
            self._fail("POST /api/v1/cases", send.entity, f"{r.status_code} {r.text[:300]}")
        self.accepted[f"case {r.status_code}"] += 1

    async def _transitions(
        self, http: httpx.AsyncClient, send: Transitions, gate: asyncio.Semaphore
    ) -> None:
        try:
            unit = self.units[send.unit_id]
            headers = self.tokens.of(Role(staff_role(unit)), unit.unit_id)
            url = f"{self.endpoints.cases}/api/v1/cases/{send.case_id}"
            deadline = time.monotonic() + 300
            while (r := await self._request(http, "GET", url, headers=headers)).status_code == 404:
                if time.monotonic() > deadline:  # announced on lhpn.inbound: it arrives
                    self._fail("case never appeared", send.entity, r.text[:300])
                    return
                self.stats.retries["case not there yet"] += 1
                await asyncio.sleep(RETRY_PAUSE)
            for n, (to, at) in enumerate(send.steps):
                r = await self._request(
                    http,
                    "POST",
                    f"{url}/transitions",
                    json={"to": to, "at": at, "note": f"Bước {n + 1}"},
                    headers=headers,
                )
                if r.status_code == 409 and await self._already(http, url, headers, n + 1, to):
                    self.stats.retries["transition already applied"] += 1
                elif r.status_code != 200:
                    self._fail(
                        f"transition to {to}", send.entity, f"{r.status_code} {r.text[:300]}"
                    )
                    return
                self.accepted["transition"] += 1
        finally:
            gate.release()

    async def _already(
        self, http: httpx.AsyncClient, url: str, headers: dict[str, str], step: int, to: str
    ) -> bool:
        """An earlier attempt of this transition went through though its answer was lost."""
        case = (await self._request(http, "GET", url, headers=headers)).json()
        return len(case.get("timeline", [])) == step + 1 and case.get("status") == to

    def _fail(self, what: str, entity: str, detail: str) -> None:
        self.stats.failures.append(Failure(what, entity, detail))


def _slot(entity: str, slots: int) -> int:
    """The worker an entity's sends always go through (the same in every run of a seed)."""
    return zlib.crc32(entity.encode()) % slots


class _Publisher:
    """Publishes on `lhpn.inbound` as one broker user, each message until it is confirmed."""

    def __init__(self, url: str, user: str, stats: DriverStats) -> None:
        self.url, self.user, self.stats = url, user, stats
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None

    async def __aenter__(self) -> _Publisher:
        self._connection = await aio_pika.connect_robust(self.url, reconnect_interval=0.5)
        channel = await self._connection.channel(publisher_confirms=True)
        self._exchange = await channel.get_exchange("lhpn.inbound", ensure=True)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def publish(self, send: Amqp) -> None:
        assert self._exchange is not None
        message = aio_pika.Message(
            send.body,
            content_type="application/json",
            message_id=send.message_id,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            user_id=self.user,
        )
        while True:
            try:
                await self._exchange.publish(message, routing_key=send.routing_key, timeout=5)
                return
            except Exception:  # the broker is away: again once it is back
                self.stats.retries["publish"] += 1
                await asyncio.sleep(RETRY_PAUSE)

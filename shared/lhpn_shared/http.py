"""What every service's HTTP side shares: error mapping, the request size limit, health,
readiness, metrics, AsyncAPI."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import date
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from pydantic import AwareDatetime, BeforeValidator, ValidationError
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import correlation
from .access import AccessDenied
from .mongo import TRANSIENT_DB_ERRORS
from .settings import ServiceSettings

if TYPE_CHECKING:
    from faststream.rabbit import RabbitBroker

    from .outbox import OutboxRelay

log = logging.getLogger("lhpn.http")
access = logging.getLogger("lhpn.access")

RETRY_AFTER_SECONDS = 5
Next = Callable[[Request], Awaitable[Response]]
DB_DOWN_DETAIL = "Cơ sở dữ liệu tạm thời không sẵn sàng, vui lòng thử lại sau ít phút."


CODE = r"^[A-Za-z0-9_.:@-]{1,100}$"
"""What a code-like query filter holds (report types, period keys, unit ids): anything else is
refused with 422 rather than quietly matching nothing."""


def _written_as(pattern: str, example: str) -> BeforeValidator:
    """A query value must be text of this shape before pydantic reads it: pydantic alone would
    read a bare number as a Unix time (`from_on=3.37e-273` was 1 January 1970)."""
    shape = re.compile(pattern)

    def check(value: Any) -> Any:
        if isinstance(value, str) and not shape.match(value):
            raise ValueError(f"cần viết dạng {example}")
        return value

    return BeforeValidator(check)


INSTANT_TEXT = _written_as(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}", "2021-07-01T00:00:00+07:00")
"""An instant in a query string is written as ISO 8601 (for a parameter that judges its zone
itself; else `QueryInstant`)."""

QueryInstant = Annotated[AwareDatetime, INSTANT_TEXT]
"""An instant in a query string, written as ISO 8601 with its zone."""

QueryDate = Annotated[date, _written_as(r"^\d{4}-\d{2}-\d{2}$", "2021-07-01")]
"""A day in a query string, written as ISO 8601 (2021-07-01)."""


class FieldProblem(Exception):
    """Input refused by a rule that needs more than the request model (unknown unit, a date in
    the future…): answered 422 in FastAPI's own shape, naming the field."""

    def __init__(self, problems: list[tuple[tuple[str | int, ...], str]]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, loc))}: {msg}" for loc, msg in problems))
        self.problems = problems

    def detail(self) -> list[dict[str, Any]]:
        return [
            {"loc": ["body", *loc], "msg": msg, "type": "value_error"} for loc, msg in self.problems
        ]


class RefuseRepeatedQueryParameters:
    """A query parameter given twice (`?unit_id=1&unit_id=2`) is refused with 422 naming it:
    every query parameter here holds one value, and silently taking the last one would let a
    caller mean one thing and be understood as another."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("query_string"):
            seen: set[str] = set()
            for key, _ in parse_qsl(scope["query_string"].decode("latin-1"), True):
                if key in seen:
                    detail = [
                        {
                            "loc": ["query", key],
                            "msg": f"Tham số '{key}' chỉ được có một giá trị.",
                            "type": "value_error",
                        }
                    ]
                    await JSONResponse({"detail": detail}, status_code=422)(scope, receive, send)
                    return
                seen.add(key)
        await self.app(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    app.add_middleware(RefuseRepeatedQueryParameters)

    async def db_unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.warning(
            "database unavailable", extra={"path": request.url.path, "error": type(exc).__name__}
        )
        return JSONResponse(
            {"detail": DB_DOWN_DETAIL},
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    for exc_type in TRANSIENT_DB_ERRORS:
        app.add_exception_handler(exc_type, db_unavailable)

    async def field_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, FieldProblem)
        return JSONResponse({"detail": exc.detail()}, status_code=422)

    app.add_exception_handler(FieldProblem, field_problem)

    async def access_denied(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=403)

    app.add_exception_handler(AccessDenied, access_denied)

    async def request_invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        detail = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": detail}, status_code=422)

    app.add_exception_handler(RequestValidationError, request_invalid)

    async def model_invalid(request: Request, exc: Exception) -> JSONResponse:
        """A model a route builds from its input refused it (the request models let it
        through): still the caller's input, so 422 naming the field, never a 500."""
        assert isinstance(exc, ValidationError)
        log.warning("input refused by a model", extra={"path": request.url.path})
        detail = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": detail}, status_code=422)

    app.add_exception_handler(ValidationError, model_invalid)


class _TooLarge(Exception):
    """Raised into the application when the body it reads passes the limit."""


class RequestSizeLimit:
    """ASGI middleware: a request body over `max_bytes` is answered 413 before the application
    parses it — at once when `Content-Length` says so, or as soon as a streamed (chunked) body
    passes the limit; whatever the application was about to answer is dropped."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send)
            return
        received = 0
        exceeded = started = False

        async def limited() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise _TooLarge
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # the application's answer to a body it could not read whole
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, guarded)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        response = JSONResponse(
            {"detail": f"Yêu cầu quá lớn: nội dung gửi lên tối đa {_size(self.max_bytes)}."},
            status_code=413,
            headers={"Connection": "close"},
        )
        await response({"type": "http"}, _nothing, send)


async def _nothing() -> Message:
    return {"type": "http.disconnect"}


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _size(n: int) -> str:
    mib = 1024 * 1024
    return f"{n // mib} MB" if n % mib == 0 else f"{n:,} byte".replace(",", ".")


def limit_request_size(app: FastAPI, max_bytes: int) -> None:
    """Answer 413 to a request body over `max_bytes` (`MAX_REQUEST_BYTES`), before parsing."""
    app.add_middleware(RequestSizeLimit, max_bytes=max_bytes)


def answer_with_status(app: FastAPI, statuses: Mapping[type[Exception], int]) -> None:
    """Map a service's own exceptions to status codes, their message as the detail."""

    def handler_for(status: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
        async def handler(request: Request, exc: Exception) -> JSONResponse:
            headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 503 else None
            return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)

        return handler

    for exc_type, status in statuses.items():
        app.add_exception_handler(exc_type, handler_for(status))


Probe = Callable[[], Awaitable[None]]
"""Sets some gauges from what it asks (the database, the broker) when `/metrics` is read."""

OPS_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
PROBE_SECONDS = 2.0


class Metrics:
    """A per-app Prometheus registry (no global state shared between test apps) and what every
    service exposes on `/metrics`:

    - `lhpn_http_requests_total`, `lhpn_http_request_duration_seconds` (method, route, status);
    - with `observe_broker`: FastStream's own counters of messages received and processed per
      handler (`faststream_received_processed_messages_total{app_name, handler, status}`, the
      handler being `<exchange>.<routing key>`, i.e. the event type) and published per
      destination (`faststream_published_messages_total`), and, read from the broker at
      scrape time, `lhpn_queue_ready_messages` / `lhpn_dead_letter_messages` of the
      service's own queues and their DLQs;
    - with `observe_outbox`: `lhpn_outbox_pending_documents` (events written, not yet
      published) per collection.
    """

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "lhpn_http_requests_total",
            "HTTP requests by route and status",
            ["service", "method", "route", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "lhpn_http_request_duration_seconds",
            "HTTP request duration, from the request's arrival to the end of its answer",
            ["service", "method", "route"],
            registry=self.registry,
        )
        self.events = Counter(
            "lhpn_events_total",
            "Events handled by type and outcome",
            ["service", "type", "outcome"],
            registry=self.registry,
        )
        self.service = service
        self._probes: list[tuple[str, Probe]] = []

    def install(self, app: FastAPI) -> None:
        """The request middleware: the correlation id (taken from `X-Correlation-ID` or
        `X-Request-ID`, or new; answered in `X-Correlation-ID`), the request counter and
        latency, and one log line per request (outside `/healthz`, `/readyz`, `/metrics`)."""
        app.add_middleware(_ObserveRequests, metrics=self)

    def probe(self, name: str, probe: Probe) -> None:
        """Run `probe` whenever `/metrics` is read (bounded in time; a failure leaves the last
        values and is logged)."""
        self._probes.append((name, probe))

    async def refresh(self) -> None:
        for name, probe in self._probes:
            try:
                await asyncio.wait_for(probe(), timeout=PROBE_SECONDS)
            except Exception as exc:
                log.debug("metrics probe failed", extra={"probe": name, "error": repr(exc)[:200]})

    def observe_broker(self, broker: RabbitBroker) -> None:
        """Count the broker's messages in and out (FastStream's Prometheus middleware, into
        this registry) and report the depth of the service's own queues (`broker.TOPOLOGY`)
        and their DLQs at every scrape."""
        from faststream.rabbit.prometheus import RabbitPrometheusMiddleware

        from .broker import built_once_for_publishing, queue_depths, queues_of

        queues = [b.queue for b in queues_of(self.service)]
        broker.add_middleware(
            built_once_for_publishing(
                RabbitPrometheusMiddleware(registry=self.registry, app_name=self.service)
            )
        )
        ready = Gauge(
            "lhpn_queue_ready_messages",
            "Messages waiting in the service's own queues (RabbitMQ's count, read at scrape)",
            ["service", "queue"],
            registry=self.registry,
        )
        dead = Gauge(
            "lhpn_dead_letter_messages",
            "Messages in the dead-letter queues of the service's own queues (read at scrape)",
            ["service", "queue"],
            registry=self.registry,
        )
        names = [*queues, *(f"{q}.dlq" for q in queues)]

        async def depths() -> None:
            if not await broker.ping(timeout=0.2):
                return
            for name, count in (await queue_depths(broker, names)).items():
                gauge = dead if name.endswith(".dlq") else ready
                gauge.labels(self.service, name).set(count)

        if names:
            self.probe("queues", depths)

    def observe_outbox(self, relay: Callable[[], OutboxRelay | None]) -> None:
        """Report the outbox backlog of the service's relay (once it exists) at every scrape."""
        pending = Gauge(
            "lhpn_outbox_pending_documents",
            "Documents whose events are written but not yet published (outbox backlog)",
            ["service", "collection"],
            registry=self.registry,
        )

        async def backlog() -> None:
            current = relay()
            if current is None:
                return
            for collection, count in (await current.backlog()).items():
                pending.labels(self.service, collection).set(count)

        self.probe("outbox", backlog)


class _ObserveRequests:
    """Pure ASGI (no extra task per request, so the correlation id set here is the one the
    endpoint and everything it calls see)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        cid = (
            correlation.accepted(headers.get(correlation.HEADER))
            or correlation.accepted(headers.get(correlation.REQUEST_ID_HEADER))
            or correlation.new_id()
        )
        status = 500

        async def answer(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                MutableHeaders(scope=message).append(correlation.HEADER, cid)
            await send(message)

        started = time.perf_counter()
        client = scope.get("client")
        with correlation.correlated(cid), correlation.on_behalf_of(client[0] if client else None):
            try:
                await self.app(scope, receive, answer)
            finally:
                self._record(scope, status, time.perf_counter() - started)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        path = getattr(route, "path", "unmatched")
        method = scope.get("method", "")
        m = self.metrics
        m.http_requests.labels(m.service, method, path, status).inc()
        m.http_latency.labels(m.service, method, path).observe(seconds)
        if scope.get("path") not in OPS_PATHS:
            access.info(
                "request",
                extra={
                    "method": method,
                    "route": path,
                    "status": status,
                    "ms": round(seconds * 1000, 1),
                },
            )


def ops_router(
    *,
    checks: Mapping[str, Callable[[], Awaitable[bool]]],
    metrics: Metrics,
    asyncapi: Callable[[], str] | None = None,
) -> APIRouter:
    """`/healthz`, `/readyz` (every check must pass), `/metrics`, and `/asyncapi.json` for a
    service that has a broker (the portal has none)."""
    router = APIRouter(tags=["ops"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        responses={503: {"description": "a dependency is down (see `checks`); Retry-After"}},
    )
    async def readyz() -> JSONResponse:
        results = {name: await check() for name, check in checks.items()}
        ok = all(results.values())
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "checks": results},
            status_code=200 if ok else 503,
            headers=None if ok else {"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    @router.get(
        "/metrics",
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
    )
    async def prometheus() -> Response:
        await metrics.refresh()
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    if asyncapi is not None:
        document = asyncapi

        @router.get("/asyncapi.json")
        async def asyncapi_document() -> Response:
            return Response(document(), media_type="application/json")

    return router


def serve(app: FastAPI, settings: ServiceSettings, port: int) -> None:
    """Run the app with uvicorn until SIGTERM or SIGINT, then shut down within
    `SHUTDOWN_GRACE_SECONDS`: the listening socket closes, the requests in flight get
    `http_drain_seconds` to finish, then the lifespan stops the rest (`runtime.Background.stop`).
    The process then exits with status 0."""
    import signal

    import uvicorn

    def exit_zero(signum: int, frame: object) -> None:
        raise SystemExit(0)

    # uvicorn re-raises the signal it caught once it has shut down, under the handlers found
    # when it started: these make that a normal exit (status 0) rather than a death by signal
    signal.signal(signal.SIGTERM, exit_zero)
    signal.signal(signal.SIGINT, exit_zero)
    uvicorn.run(
        app,
        host=settings.http_host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=max(1, round(settings.http_drain_seconds)),
    )

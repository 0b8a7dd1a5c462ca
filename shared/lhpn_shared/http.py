"""What every service's HTTP side shares: error mapping, the request size limit, health,
readiness, metrics, AsyncAPI."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .mongo import TRANSIENT_DB_ERRORS

log = logging.getLogger("lhpn.http")

RETRY_AFTER_SECONDS = 5
Next = Callable[[Request], Awaitable[Response]]
DB_DOWN_DETAIL = "Cơ sở dữ liệu tạm thời không sẵn sàng, vui lòng thử lại sau ít phút."


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


def install_error_handlers(app: FastAPI) -> None:
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

    async def request_invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        detail = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": detail}, status_code=422)

    app.add_exception_handler(RequestValidationError, request_invalid)


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


class Metrics:
    """A per-app Prometheus registry (no global state shared between test apps)."""

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "lhpn_http_requests_total",
            "HTTP requests by route and status",
            ["service", "method", "route", "status"],
            registry=self.registry,
        )
        self.events = Counter(
            "lhpn_events_total",
            "Events handled by type and outcome",
            ["service", "type", "outcome"],
            registry=self.registry,
        )
        self.service = service

    def install(self, app: FastAPI) -> None:
        @app.middleware("http")
        async def count(
            request: Request, call_next: Callable[[Request], Awaitable[Response]]
        ) -> Response:
            response = await call_next(request)
            route = request.scope.get("route")
            path = getattr(route, "path", "unmatched")
            self.http_requests.labels(
                self.service, request.method, path, response.status_code
            ).inc()
            return response


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

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        results = {name: await check() for name, check in checks.items()}
        ok = all(results.values())
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "checks": results},
            status_code=200 if ok else 503,
            headers=None if ok else {"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    @router.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    if asyncapi is not None:
        document = asyncapi

        @router.get("/asyncapi.json")
        async def asyncapi_document() -> Response:
            return Response(document(), media_type="application/json")

    return router

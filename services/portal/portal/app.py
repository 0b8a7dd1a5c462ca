"""The portal's composition root: `create_app(settings)` builds the pages, the session, the
security headers and the one shared HTTP client to the services.

The portal owns no data: every page calls the services' APIs with the signed-in user's token.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlencode

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from lhpn_shared.clock import Clock, SystemClock
from lhpn_shared.http import Metrics, limit_request_size, ops_router

from .backend import (
    Backend,
    BackendError,
    Forbidden,
    NotFound,
    ReferenceAnswers,
    ServiceDown,
    SessionRejected,
)
from .pages import (
    account,
    activities,
    admin,
    admin_dead_letters,
    admin_keys,
    admin_policy,
    admin_users,
    auth,
    cases,
    dashboard,
    exports,
    reports,
)
from .session import CsrfRejected, SignInRequired, asked_for, forget
from .settings import PortalSettings
from .web import STATIC_DIR, make_templates, render

log = logging.getLogger("portal")

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'self'; object-src 'none'"
)


def security_headers(settings: PortalSettings) -> dict[str, str]:
    headers = {
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    }
    if settings.secure_cookies:
        headers["Strict-Transport-Security"] = "max-age=31536000"
    return headers


def to_sign_in(request: Request, next_url: str, *, expired: bool) -> Response:
    query = {"next": next_url, **({"het_han": "1"} if expired else {})}
    url = "/dang-nhap?" + urlencode(query)
    if request.headers.get("HX-Request"):  # htmx: make the browser go, not the fragment
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def install_page_errors(app: FastAPI) -> None:
    """Whatever goes wrong, the browser gets a page in Vietnamese, never a stack trace."""

    async def sign_in_required(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInRequired)
        return to_sign_in(request, exc.next_url, expired=exc.expired)

    async def session_rejected(request: Request, exc: Exception) -> Response:
        forget(request)
        return to_sign_in(request, asked_for(request), expired=True)

    async def csrf_rejected(request: Request, exc: Exception) -> Response:
        return render(
            request,
            "error.html",
            {
                "title": "Biểu mẫu đã hết hiệu lực",
                "message": "Biểu mẫu này đã cũ hoặc không phải gửi từ trang của hệ thống. "
                "Vui lòng tải lại trang rồi thử lại.",
            },
            status_code=403,
        )

    async def backend_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, BackendError)
        status = 503 if isinstance(exc, ServiceDown) else 502
        title = "Dịch vụ tạm thời không trả lời"
        if isinstance(exc, Forbidden):
            status, title = 403, "Không có quyền truy cập"
        elif isinstance(exc, NotFound):
            status, title = 404, "Không tìm thấy"
        return render(
            request,
            "error.html",
            {"title": title, "message": exc.message},
            user=getattr(request.state, "user", None),
            status_code=status,
        )

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            title, message = "Không tìm thấy trang", "Địa chỉ này không có trong hệ thống."
        elif exc.status_code == 405:
            title, message = "Không thực hiện được", "Trang này không nhận thao tác đó."
        else:
            title, message = "Không thực hiện được", str(exc.detail)
        return render(
            request,
            "error.html",
            {"title": title, "message": message},
            status_code=exc.status_code,
        )

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.error("page failed", extra={"path": request.url.path}, exc_info=exc)
        return render(
            request,
            "error.html",
            {
                "title": "Đã có lỗi",
                "message": "Hệ thống gặp lỗi khi hiển thị trang này. Vui lòng thử lại; nếu "
                "vẫn lỗi, xin báo cho quản trị hệ thống.",
            },
            status_code=500,
        )

    app.add_exception_handler(SignInRequired, sign_in_required)
    app.add_exception_handler(SessionRejected, session_rejected)
    app.add_exception_handler(CsrfRejected, csrf_rejected)
    app.add_exception_handler(BackendError, backend_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)


def create_app(
    settings: PortalSettings,
    clock: Clock | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """`transport` replaces the network under the HTTP client (tests of the pages alone)."""
    clock = clock or SystemClock()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with httpx.AsyncClient(
            transport=transport,
            timeout=settings.backend_timeout_seconds,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        ) as client:
            app.state.backend = Backend(
                client,
                settings.service_urls(),
                timeout=settings.backend_timeout_seconds,
                export_timeout=settings.export_timeout_seconds,
                reference=ReferenceAnswers(settings.reference_cache_seconds),
            )
            yield

    app = FastAPI(
        title="LHPN portal",
        version="1.0.0",
        description="Trang web cho cán bộ Hội LHPN (SPEC §1, §9.2).",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.clock = clock
    app.state.templates = make_templates()
    install_page_errors(app)

    headers = security_headers(settings)

    @app.middleware("http")
    async def secure(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        if not request.url.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    metrics = Metrics("portal")
    metrics.install(app)
    limit_request_size(app, settings.max_request_bytes)
    # outermost: the session is there for every handler, the error pages included
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.session_secret.get_secret_value(),
        session_cookie=settings.session_cookie,
        max_age=settings.jwt_ttl_minutes * 60,
        same_site="lax",
        https_only=settings.secure_cookies,
    )

    async def client_open() -> bool:
        return hasattr(app.state, "backend") and not app.state.backend.client.is_closed

    app.include_router(ops_router(checks={"http_client": client_open}, metrics=metrics))
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for pages in (
        auth,
        dashboard,
        activities,
        reports,
        cases,
        admin,
        admin_users,
        admin_keys,
        admin_dead_letters,
        admin_policy,
        account,
        exports,
    ):
        app.include_router(pages.router)

    return app

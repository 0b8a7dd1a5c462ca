"""The portal's only way to the data: the services' HTTP APIs, called with the signed-in user's
token through one shared httpx client.

Every answer a page cannot use becomes one of a few exceptions, each with a message for a person:
`ServiceDown` (not reachable, timed out, 5xx), `SessionRejected` (401: sign in again),
`Forbidden`, `NotFound`, `Conflict`, `Invalid` (422 with the problems per field). Pages show them
where the data would have been; no stack trace ever reaches a browser.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from lhpn_shared import correlation

from .labels import SERVICE_LABELS
from .problems import FieldErrors, field_errors

log = logging.getLogger("portal.backend")


class BackendError(Exception):
    """Something a service answered (or did not) that the page must show instead of data."""

    def __init__(self, service: str, message: str) -> None:
        super().__init__(message)
        self.service = service
        self.message = message


class ServiceDown(BackendError):
    def __init__(self, service: str, why: str = "") -> None:
        label = SERVICE_LABELS.get(service, service)
        super().__init__(
            service,
            f"Dịch vụ {label} tạm thời không trả lời, nên phần này chưa hiển thị được. "
            "Các phần khác của trang vẫn dùng được; vui lòng thử lại sau ít phút.",
        )
        self.why = why


class SessionRejected(BackendError):
    """The service refused the token (expired, revoked): the user signs in again."""


class Forbidden(BackendError):
    pass


class NotFound(BackendError):
    pass


class Conflict(BackendError):
    def __init__(self, service: str, message: str, allowed: list[str] | None = None) -> None:
        super().__init__(service, message)
        self.allowed = allowed or []


class Invalid(BackendError):
    def __init__(self, service: str, errors: FieldErrors) -> None:
        super().__init__(service, "Thông tin chưa hợp lệ, xin xem các ô được đánh dấu.")
        self.errors = errors


def _detail(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("detail") if isinstance(body, dict) else None


def _text(detail: Any, default: str) -> str:
    return detail if isinstance(detail, str) and detail else default


class ReferenceAnswers:
    """Intake's reference data (plans, the unit tree) as last answered, for `seconds`: most
    pages need it, it changes a few times a year, and asking for it on every page was a round
    trip of its own before the page's real calls. Keyed by what decides the answer and who may
    see it — the call and the caller's role and unit —, never shared between roles or units."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._answers: dict[Hashable, tuple[float, Any]] = {}

    def get(self, key: Hashable) -> Any | None:
        kept = self._answers.get(key)
        if kept is None or kept[0] <= self._clock():
            self._answers.pop(key, None)
            return None
        return kept[1]

    def put(self, key: Hashable, answer: Any) -> None:
        if self.seconds > 0:
            if len(self._answers) > 1000:  # units × roles is small; never let it grow unbounded
                self._answers.clear()
            self._answers[key] = (self._clock() + self.seconds, answer)


class Backend:
    """The services' APIs. `client` is the app's one shared httpx client."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        urls: Mapping[str, str],
        *,
        timeout: float,
        export_timeout: float,
        reference: ReferenceAnswers | None = None,
    ) -> None:
        self.client = client
        self.urls = dict(urls)
        self.timeout = timeout
        self.export_timeout = export_timeout
        self.reference = reference or ReferenceAnswers(0)

    async def request(
        self,
        service: str,
        method: str,
        path: str,
        *,
        token: str | None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        wait_seconds: float | None = None,
    ) -> httpx.Response:
        """One call; raises the matching `BackendError` unless the answer is a 2xx."""
        # the page's correlation id goes on to the service (and into the events it writes)
        headers = {**correlation.outgoing_headers()}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        clean = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        url = self.urls[service] + path
        try:
            response = await self.client.request(
                method,
                url,
                params=clean,
                json=json,
                data=data,
                headers=headers,
                timeout=wait_seconds or self.timeout,
            )
        except httpx.HTTPError as exc:  # refused, reset, timed out, bad URL…
            log.warning(
                "service unreachable",
                extra={"service": service, "path": path, "error": type(exc).__name__},
            )
            raise ServiceDown(service, type(exc).__name__) from exc
        status = response.status_code
        if status < 400:
            return response
        detail = _detail(response)
        if status == 401:
            raise SessionRejected(
                service, _text(detail, "Phiên đăng nhập đã hết hạn, vui lòng đăng nhập lại.")
            )
        if status == 403:
            raise Forbidden(service, _text(detail, "Bạn không có quyền xem hoặc làm việc này."))
        if status == 404:
            raise NotFound(service, _text(detail, "Không tìm thấy."))
        if status == 409:
            try:
                allowed = response.json().get("allowed")
            except (ValueError, AttributeError):
                allowed = None
            raise Conflict(
                service, _text(detail, "Dữ liệu vừa thay đổi, vui lòng tải lại trang."), allowed
            )
        if status in (400, 422):
            raise Invalid(service, field_errors(detail))
        if status == 413:
            raise Invalid(
                service, {"": "Nội dung gửi đi quá lớn (thường do tệp đính kèm quá nặng)."}
            )
        log.warning("service failed", extra={"service": service, "path": path, "status": status})
        raise ServiceDown(service, f"HTTP {status}")

    async def get(
        self,
        service: str,
        path: str,
        *,
        token: str | None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        return (await self.request(service, "GET", path, token=token, params=params)).json()

    async def get_reference(
        self,
        path: str,
        *,
        token: str,
        audience: tuple[str, str | None],
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        """An intake reference answer (plans, units), kept a short while per `audience`
        (the caller's role and unit): see `ReferenceAnswers`."""
        key = (path, tuple(sorted((params or {}).items())), audience)
        answer = self.reference.get(key)
        if answer is None:
            answer = await self.get("intake", path, token=token, params=params)
            self.reference.put(key, answer)
        return answer

    async def send(
        self,
        service: str,
        method: str,
        path: str,
        *,
        token: str | None,
        json: Any = None,
        slow: bool = False,
    ) -> Any:
        """A write; `slow` ones (a catch-up sweep) may take as long as an export."""
        wait = self.export_timeout if slow else None
        answer = await self.request(
            service, method, path, token=token, json=json, wait_seconds=wait
        )
        return answer.json()

    async def sign_in(self, username: str, password: str) -> dict[str, Any]:
        """Intake's `POST /api/v1/auth/token`; a wrong password is a `SessionRejected`."""
        response = await self.request(
            "intake",
            "POST",
            "/api/v1/auth/token",
            token=None,
            data={"username": username, "password": password},
        )
        body: dict[str, Any] = response.json()
        return body

    async def export(
        self, service: str, path: str, *, token: str, params: Mapping[str, Any]
    ) -> httpx.Response:
        """A file (.xlsx, .docx) produced by a service, to pass on to the browser."""
        return await self.request(
            service, "GET", path, token=token, params=params, wait_seconds=self.export_timeout
        )


@dataclass
class Part:
    """One section of a page: its data (the service's JSON), or the message to show in its
    place."""

    data: Any = None
    error: str | None = None
    errors: FieldErrors = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None


async def part(call: Awaitable[Any]) -> Part:
    """Run one section's call; a service that is down or refuses becomes the section's message.
    `SessionRejected` is not caught: the whole page goes back to sign-in."""
    try:
        return Part(data=await call)
    except SessionRejected:
        raise
    except Invalid as exc:
        return Part(error=exc.message, errors=exc.errors)
    except BackendError as exc:
        return Part(error=exc.message)


async def parts(**calls: Awaitable[Any]) -> dict[str, Part]:
    """Run the sections' calls at the same time."""
    try:
        async with asyncio.TaskGroup() as group:  # a SessionRejected cancels the other calls
            tasks = {name: group.create_task(part(call)) for name, call in calls.items()}
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return {name: task.result() for name, task in tasks.items()}

"""What every `lhpn` command shares: where the services answer, signing in as an admin, the
progress display, and turning failures into one plain message and an exit status.

Messages go to standard error (with the progress bars); a command whose output is data (a
password shown once, a JSON report) writes that alone to standard output.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any, TypeVar

import httpx
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

console = Console(stderr=True, soft_wrap=True)  # a message stays one line (logs, grep)
DEV_PASSWORD = "admin"  # noqa: S105 - the development default; intake refuses it in production

DEFAULT_PORTS = {"intake": 8001, "cases": 8002, "reminders": 8003, "aggregation": 8004}

T = TypeVar("T")


class Failed(Exception):
    """The command could not do its work; the message says why, in words for the operator."""


def default_url(service: str) -> str:
    """http://127.0.0.1:<SERVICE>_PORT (the service's default port when unset)."""
    port = os.environ.get(f"{service.upper()}_PORT", str(DEFAULT_PORTS[service]))
    return f"http://127.0.0.1:{port}"


IntakeUrl = Annotated[
    str,
    typer.Option(
        "--url",
        envvar="LHPN_INTAKE_URL",
        help="Where intake answers. Default: http://127.0.0.1:$INTAKE_PORT (8001).",
    ),
]
RemindersUrl = Annotated[
    str,
    typer.Option(
        envvar="LHPN_REMINDERS_URL",
        help="Where reminders answers. Default: http://127.0.0.1:$REMINDERS_PORT (8003).",
    ),
]
Username = Annotated[
    str, typer.Option(envvar="ADMIN_USERNAME", help="An admin account (signs in at intake).")
]
Password = Annotated[
    str,
    typer.Option(
        envvar="ADMIN_PASSWORD",
        help="Its password (read from ADMIN_PASSWORD; 'admin' only in development).",
        show_default=False,
    ),
]


def progress(*, counted: bool = True) -> Progress:
    """Bars with done/total and elapsed time; `counted=False`: a spinner for one long step."""
    columns: list[Any] = [SpinnerColumn(), TextColumn("{task.description}")]
    if counted:
        columns += [BarColumn(), MofNCompleteColumn()]
    return Progress(*columns, TimeElapsedColumn(), console=console)


@contextlib.asynccontextmanager
async def admin_client(
    intake_url: str, username: str, password: str, *, base_url: str | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """A client for `base_url` (default: intake) carrying an admin's token from intake."""
    async with httpx.AsyncClient(base_url=intake_url, timeout=60) as signin:
        r = await signin.post(
            "/api/v1/auth/token", data={"username": username, "password": password}
        )
    if r.status_code != 200:
        raise Failed(f"Đăng nhập {intake_url} không được ({r.status_code}): {_detail(r)}")
    token = r.json()["access_token"]
    async with httpx.AsyncClient(
        base_url=base_url or intake_url,
        timeout=600,
        headers={"Authorization": f"Bearer {token}"},
    ) as client:
        yield client


def _detail(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.text[:500]
    return str(body.get("detail", body)) if isinstance(body, dict) else str(body)[:500]


def check(r: httpx.Response) -> Any:
    """The answer's JSON, or `Failed` naming the request and the service's reason."""
    if r.status_code >= 400:
        raise Failed(f"{r.request.method} {r.request.url.path}: {r.status_code} {_detail(r)}")
    return r.json()


def run(
    work: Callable[[], Coroutine[Any, Any, T]], *, refused: tuple[type[Exception], ...] = ()
) -> T:
    """Run the command's work; a failure becomes its message and exit status 1 (2 when a
    service cannot be reached)."""
    try:
        return asyncio.run(work())
    except httpx.HTTPError as exc:
        console.print(f"[red]Không kết nối được dịch vụ:[/red] {exc!r}")
        raise typer.Exit(2) from exc
    except Exception as exc:
        if not isinstance(exc, (Failed, *refused)):
            raise
        console.print(f"[red]Không thực hiện được:[/red] {exc}")
        raise typer.Exit(1) from exc

"""`lhpn`: the operator command. It talks to intake's API as an admin, like any client.

lhpn units load --national 2025              the whole country, before and after 1/7/2025
lhpn units load --national 2025 --province 66
lhpn units load --national 2021              the three-tier tree only
lhpn units load --csv units.csv              a tree of your own (columns: see --help)
lhpn units reorganise changes.json           one reorganisation, or a list of them
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Coroutine
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .loading import Advance, IntakeRefused, Totals, load_csv, load_national, reorganise_file
from .national import UnresolvedUnits

app = typer.Typer(
    help="Công cụ vận hành LHPN (operator command). Talks to the intake service as an admin.",
    no_args_is_help=True,
)
units_app = typer.Typer(
    help="The unit tree: load the national data or a file of your own, apply reorganisations.",
    no_args_is_help=True,
)
app.add_typer(units_app, name="units")

console = Console(stderr=True)
DEV_PASSWORD = "admin"  # noqa: S105 - the development default; intake refuses it in production


class Year(StrEnum):
    legacy = "2021"
    two_tier = "2025"


Url = Annotated[
    str,
    typer.Option(
        envvar="LHPN_INTAKE_URL",
        help="Where intake answers. Default: http://127.0.0.1:$INTAKE_PORT (8001).",
    ),
]
Username = Annotated[str, typer.Option(envvar="ADMIN_USERNAME", help="An admin account.")]
Password = Annotated[
    str,
    typer.Option(
        envvar="ADMIN_PASSWORD",
        help="Its password (read from ADMIN_PASSWORD; 'admin' only in development).",
        show_default=False,
    ),
]


def default_url() -> str:
    return f"http://127.0.0.1:{os.environ.get('INTAKE_PORT', '8001')}"


async def _with_intake(
    url: str,
    username: str,
    password: str,
    work: Callable[[httpx.AsyncClient, Callable[[str, int], Advance]], Awaitable[Totals]],
) -> Totals:
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        r = await client.post(
            "/api/v1/auth/token", data={"username": username, "password": password}
        )
        if r.status_code != 200:
            raise IntakeRefused(f"Đăng nhập {url} không được ({r.status_code}): {r.text}")
        client.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:

            def start(label: str, total: int) -> Advance:
                task = progress.add_task(label, total=total)
                return lambda n: progress.advance(task, n)

            return await work(client, start)


def _run(work: Callable[[], Coroutine[Any, Any, Totals]]) -> None:
    try:
        totals = asyncio.run(work())
    except (IntakeRefused, UnresolvedUnits) as exc:
        console.print(f"[red]Không thực hiện được:[/red] {exc}")
        raise typer.Exit(1) from exc
    except httpx.HTTPError as exc:
        console.print(f"[red]Không kết nối được intake:[/red] {exc!r}")
        raise typer.Exit(2) from exc
    console.print(
        f"Đơn vị mới: {totals.created}, đã có (giữ nguyên): {totals.kept}; "
        f"thay đổi đã áp dụng: {totals.reorganisations_applied}, "
        f"đã áp dụng từ trước: {totals.reorganisations_already}."
    )


@units_app.command("load")
def load(
    national: Annotated[
        Year | None,
        typer.Option(
            help="Load Vietnam's tree from the maintained packages: 2021 = the three-tier tree "
            "in force before 1 July 2025 (63 provinces; after the 2023–24 commune mergers); "
            "2025 = that tree, closed on 30 June 2025, and the two-tier tree from 1 July 2025 "
            "(34 provinces, 3,321 communes) with who continues whom."
        ),
    ] = None,
    csv: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="Load a CSV of your own: unit_id,name,kind,level,parent_id,valid_from,valid_to.",
        ),
    ] = None,
    province: Annotated[
        list[str] | None,
        typer.Option(
            help="Only this province (a GSO code, e.g. 66); repeat for several. With 2025, the "
            "2025 code: its former provinces are loaded and reorganised with it.",
        ),
    ] = None,
    url: Url = "",
    username: Username = "admin",
    password: Password = DEV_PASSWORD,
) -> None:
    """Load units into intake. Units that already exist are kept as they are; loading the same
    data again changes nothing."""
    if (national is None) == (csv is None):
        raise typer.BadParameter("give either --national 2021|2025 or --csv FILE")
    if csv is not None and province:
        raise typer.BadParameter("--province goes with --national")
    path = csv

    async def work() -> Totals:
        async def job(client: httpx.AsyncClient, start: Callable[[str, int], Advance]) -> Totals:
            if path is not None:
                return await load_csv(client, path, start=start)
            assert national is not None
            return await load_national(client, int(national.value), province or [], start=start)

        return await _with_intake(url or default_url(), username, password, job)

    _run(work)


@units_app.command("reorganise")
def reorganise(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            help="JSON: one reorganisation (effective_on, create, rename, close, successions, "
            "reorganisation_id) or a list of them, applied in order.",
        ),
    ],
    url: Url = "",
    username: Username = "admin",
    password: Password = DEV_PASSWORD,
) -> None:
    """Apply a whole reorganisation: each one all or nothing, never applied twice."""

    async def work() -> Totals:
        async def job(client: httpx.AsyncClient, start: Callable[[str, int], Advance]) -> Totals:
            return await reorganise_file(client, file, start=start)

        return await _with_intake(url or default_url(), username, password, job)

    _run(work)


def main() -> None:
    app()

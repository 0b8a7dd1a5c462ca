"""`lhpn units`: the unit tree through intake's API (every service then gets `unit.upserted`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import httpx
import typer

from .common import (
    DEV_PASSWORD,
    IntakeUrl,
    Password,
    Username,
    admin_client,
    console,
    default_url,
    progress,
    run,
)
from .loading import Advance, IntakeRefused, Totals, load_csv, load_national, reorganise_file
from .national import UnresolvedUnits

units_app = typer.Typer(
    help="The unit tree: load the national data or a file of your own, apply reorganisations.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


class Year(StrEnum):
    legacy = "2021"
    two_tier = "2025"


async def _with_intake(
    url: str,
    username: str,
    password: str,
    work: Callable[[httpx.AsyncClient, Callable[[str, int], Advance]], Awaitable[Totals]],
) -> Totals:
    async with admin_client(url, username, password) as client:
        with progress() as bars:

            def start(label: str, total: int) -> Advance:
                task = bars.add_task(label, total=total)
                return lambda n: bars.advance(task, n)

            return await work(client, start)


def _report(totals: Totals) -> None:
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
    url: IntakeUrl = "",
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

        return await _with_intake(url or default_url("intake"), username, password, job)

    _report(run(work, refused=(IntakeRefused, UnresolvedUnits)))


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
    url: IntakeUrl = "",
    username: Username = "admin",
    password: Password = DEV_PASSWORD,
) -> None:
    """Apply a whole reorganisation: each one all or nothing, never applied twice."""

    async def work() -> Totals:
        async def job(client: httpx.AsyncClient, start: Callable[[str, int], Advance]) -> Totals:
            return await reorganise_file(client, file, start=start)

        return await _with_intake(url or default_url("intake"), username, password, job)

    _report(run(work, refused=(IntakeRefused, UnresolvedUnits)))

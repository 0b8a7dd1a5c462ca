"""Loading unit trees into intake through its API, so every service gets `unit.upserted`.

The functions take an authenticated `httpx.AsyncClient` pointed at intake (the command builds
one; tests pass one bound to an app in the same process) and a `Progress` to report to.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from lhpn_shared.contracts.units import Unit

from .national import (
    NationalData,
    legacy_units,
    read_national,
    reorganisation_2025,
)

LOAD_BATCH = 1000

Advance = Callable[[int], None]
"""Called with how many items were just done (drives a progress bar)."""


class IntakeRefused(Exception):
    """Intake answered with an error; the message is its `detail`."""


@dataclass
class Totals:
    created: int = 0
    kept: int = 0
    reorganisations_applied: int = 0
    reorganisations_already: int = 0

    def add_load(self, answer: dict[str, Any]) -> None:
        self.created += answer["created"] + answer["replaced"]
        self.kept += answer["unchanged"]


RETRIES = 6


async def _send(client: httpx.AsyncClient, method: str, url: str, **kw: Any) -> httpx.Response:
    """One request, tried again while intake answers 503 (its database is busy or down: it
    says when to come back) or cannot be reached. Every request here is safe to repeat: loads
    create only what is missing, a reorganisation with its id is applied once."""
    for attempt in range(1, RETRIES + 1):
        try:
            r = await client.request(method, url, **kw)
        except httpx.TransportError:
            if attempt == RETRIES:
                raise
        else:
            if r.status_code != 503 or attempt == RETRIES:
                return r
        await asyncio.sleep(min(30.0, float(2**attempt)))
    raise AssertionError("unreachable")


def _check(r: httpx.Response) -> dict[str, Any]:
    if r.status_code >= 400:
        try:
            detail = r.json().get("detail", r.text)
        except ValueError:
            detail = r.text
        raise IntakeRefused(f"{r.request.method} {r.request.url.path}: {r.status_code} {detail}")
    answer: dict[str, Any] = r.json()
    return answer


async def fetch_tree(client: httpx.AsyncClient) -> dict[str, Unit]:
    """Every unit intake holds, of every day."""
    units: dict[str, Unit] = {}
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 5000, **({"cursor": cursor} if cursor else {})}
        page = _check(await _send(client, "GET", "/api/v1/units", params=params))
        for item in page["items"]:
            units[item["unit_id"]] = Unit.model_validate(item)
        cursor = page.get("next_cursor")
        if not cursor:
            return units


async def load_units(
    client: httpx.AsyncClient, units: list[Unit], advance: Advance, totals: Totals
) -> None:
    """Create the missing units, in batches (parents come before children in `units`)."""
    for start in range(0, len(units), LOAD_BATCH):
        batch = units[start : start + LOAD_BATCH]
        body = {"units": [u.model_dump(mode="json") for u in batch]}
        totals.add_load(_check(await _send(client, "POST", "/api/v1/unit-loads", json=body)))
        advance(len(batch))


async def apply_reorganisation(
    client: httpx.AsyncClient, body: dict[str, Any], totals: Totals
) -> None:
    r = await _send(client, "POST", "/api/v1/reorganisations", json=body)
    _check(r)
    if r.status_code == 201:
        totals.reorganisations_applied += 1
    else:
        totals.reorganisations_already += 1


def chosen_provinces(data: NationalData, year: int, provinces: Iterable[str]) -> list[str]:
    """The provinces asked for (all when none), checked against the packages: legacy codes for
    2021, 2025 codes for 2025."""
    wanted = {p.zfill(2) for p in provinces}
    known = (
        {u.unit_id for u in data.legacy if u.level == "province"}
        if year == 2021
        else set(data.provinces_2025)
    )
    unknown = wanted - known
    if unknown:
        raise IntakeRefused(
            f"Không có tỉnh mã {', '.join(sorted(unknown))} trong dữ liệu năm {year} "
            f"(có: {', '.join(sorted(known))})."
        )
    return sorted(wanted or known)


async def load_national(
    client: httpx.AsyncClient,
    year: int,
    provinces: Iterable[str],
    *,
    start: Callable[[str, int], Advance],
    data: NationalData | None = None,
) -> Totals:
    """`year` 2021: the legacy three-tier tree (of the provinces asked for). 2025: that tree
    first (for the provinces the 2025 ones continue), then one reorganisation per 2025 province
    — closing the legacy units on 30/06/2025 and opening the 2025 communes with their lineage.
    Loading again changes nothing. `start(label, total)` opens a progress bar."""
    data = data or read_national()
    totals = Totals()
    chosen = chosen_provinces(data, year, provinces)
    legacy = (
        set(chosen) if year == 2021 else {old for p in chosen for old in data.predecessors_of(p)}
    )
    units = legacy_units(data, legacy)
    await load_units(client, units, start("Đơn vị trước 01/07/2025", len(units)), totals)
    if year == 2021:
        return totals
    # provinces of 2025 continue disjoint groups of legacy provinces: one read of the tree
    # serves every province's reorganisation
    tree = await fetch_tree(client)
    advance = start("Sắp xếp từ 01/07/2025, theo tỉnh", len(chosen))
    for province in chosen:
        body = reorganisation_2025(data, province, tree)
        if body is not None:
            await apply_reorganisation(client, body, totals)
        advance(1)
    return totals


async def load_csv(
    client: httpx.AsyncClient, path: Path, *, start: Callable[[str, int], Advance]
) -> Totals:
    from lhpn_shared.unit_files import read_units_csv

    units = read_units_csv(path)
    totals = Totals()
    await load_units(client, units, start(f"Đơn vị từ {path.name}", len(units)), totals)
    return totals


async def reorganise_file(
    client: httpx.AsyncClient, path: Path, *, start: Callable[[str, int], Advance]
) -> Totals:
    """A file holding one reorganisation (the body of `POST /api/v1/reorganisations`) or a
    list of them, applied in order; each is all or nothing, and sending the file again applies
    nothing twice when each has a `reorganisation_id`."""
    content = json.loads(path.read_bytes().decode("utf-8"))  # noqa: ASYNC240 - a small file
    bodies = content if isinstance(content, list) else [content]
    totals = Totals()
    advance = start(f"Thay đổi từ {path.name}", len(bodies))
    for body in bodies:
        await apply_reorganisation(client, body, totals)
        advance(1)
    return totals

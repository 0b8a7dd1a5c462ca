"""The operator command's loads through intake's API: the whole country from the maintained
packages, and the default data (Phú Yên 2021, then its successor area in Đắk Lắk)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from intake.app import create_app
from intake.settings import IntakeSettings
from lhpn_cli.loading import Advance, fetch_tree, load_csv, load_national, reorganise_file
from lhpn_cli.national import read_national
from tests.support.http import eventually, login, running


def quiet(label: str, total: int) -> Advance:
    return lambda n: None


async def tree_of(
    client: httpx.AsyncClient, day: str, root: str | None = None
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"as_of": day, "limit": 5000}
        if root:
            params["unit_id"] = root
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/api/v1/units", params=params)).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


async def as_admin(client: httpx.AsyncClient) -> None:
    await eventually(lambda: _ready(client), timeout=30)
    client.headers.update(await login(client, "admin", "admin"))


async def _ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/readyz")).status_code == 200


@pytest.mark.timeout(900)
@pytest.mark.slow
async def test_national_loads_give_63_provinces_before_july_2025_and_34_with_3321_communes_after(
    settings: IntakeSettings,
) -> None:
    # 14,000 units on a shared 2-core machine: patient database timeouts (the command also
    # tries again on a 503)
    settings = settings.model_copy(update={"seed_default_data": False, "mongo_timeout_ms": 10_000})
    async with running(create_app(settings)) as client:
        await as_admin(client)
        first = await load_national(client, 2025, [], start=quiet)
        before = Counter(u["level"] for u in await tree_of(client, "2025-06-30"))
        after = Counter(u["level"] for u in await tree_of(client, "2025-07-01"))
        again = await load_national(client, 2025, [], start=quiet)

    assert before == {"national": 1, "province": 63, "district": 696, "commune": 10035}
    assert after == {"national": 1, "province": 34, "commune": 3321}
    # one reorganisation per 2025 province (one answered 503 and sent again counts as already)
    assert first.reorganisations_applied + first.reorganisations_already == 34
    assert first.created == 1 + 63 + 696 + 10035
    assert again.created == again.reorganisations_applied == again.reorganisations_already == 0


async def test_default_data_is_phu_yen_in_2021_and_its_successor_area_in_dak_lak_after_july_2025(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    client.headers.update(admin)
    await load_national(client, 2025, ["66"], start=quiet)

    in_2021 = await tree_of(client, "2021-06-01", root="54")
    assert Counter(u["level"] for u in in_2021) == {"province": 1, "district": 9, "commune": 110}
    gone = await client.get("/api/v1/units", params={"as_of": "2025-07-01", "unit_id": "54"})
    assert gone.status_code == 404

    dak_lak = await tree_of(client, "2025-07-01", root="66")
    assert Counter(u["level"] for u in dak_lak) == {"province": 1, "commune": 102}
    assert {u["parent_id"] for u in dak_lak if u["level"] == "commune"} == {"66"}

    # every Phú Yên commune of 2021 (the CSV) has a successor in the new Đắk Lắk
    units = await fetch_tree(client)
    for uid, unit in units.items():
        if unit.level == "commune" and unit.parent_id and units[unit.parent_id].parent_id == "54":
            assert unit.successors, f"{unit.name} ({uid}) has no successor"
            assert all(units[s.unit_id].parent_id == "66" for s in unit.successors)
    # Phường 1 and Phường 2 of 2021 Tuy Hòa (Phường 2 joined Phường 8 in 2024) continue in the
    # ward the packages map Tuy Hòa's Phường 1 and 2 to
    data = read_national()
    expected = {data.commune_id_2025(c) for c in data.successors["22018"]}
    assert {s.unit_id for s in units["22021"].successors} == expected
    lineage = (await client.get("/api/v1/units/54/lineage")).json()
    assert [(s["unit_id"], s["on"], s["change"]) for s in lineage["successors"]] == [
        ("66", "2025-07-01", "merge")
    ]
    # Đắk Lắk continues as the same unit: its own 2021 tree is there too
    assert any(u["unit_id"] == "66" for u in await tree_of(client, "2021-06-01"))


async def test_the_command_loads_a_csv_and_applies_a_reorganisation_file_once(
    client: httpx.AsyncClient, admin: dict[str, str], tmp_path: Path
) -> None:
    client.headers.update(admin)
    csv_file = tmp_path / "units.csv"
    csv_file.write_text(
        "unit_id,name,kind,level,parent_id,valid_from,valid_to\n"
        "X1,Xã Một,xã,commune,555,2020-01-01,\n"
        "X2,Xã Hai,xã,commune,555,2020-01-01,\n",
        encoding="utf-8",
    )
    loaded = await load_csv(client, csv_file, start=quiet)
    again = await load_csv(client, csv_file, start=quiet)
    assert (loaded.created, again.created, again.kept) == (2, 0, 2)

    change = tmp_path / "merge.json"
    change.write_text(
        json.dumps(
            {
                "reorganisation_id": "x-merge",
                "effective_on": "2024-01-01",
                "create": [
                    {"unit_id": "X3", "name": "Xã Ba", "kind": "xã", "level": "commune",
                     "parent_id": "555"}
                ],
                "close": ["X1", "X2"],
                "successions": [
                    {"predecessor_id": "X1", "successor_id": "X3"},
                    {"predecessor_id": "X2", "successor_id": "X3"},
                ],
            }
        ),
        encoding="utf-8",
    )  # fmt: skip
    first = await reorganise_file(client, change, start=quiet)
    second = await reorganise_file(client, change, start=quiet)
    assert (first.reorganisations_applied, second.reorganisations_already) == (1, 1)
    units = await fetch_tree(client)
    assert [link.unit_id for link in units["X1"].successors] == ["X3"]


def test_the_command_explains_itself_in_plain_words() -> None:
    from typer.testing import CliRunner

    from lhpn_cli.app import app

    for args in (["--help"], ["units", "load", "--help"], ["units", "reorganise", "--help"]):
        result = CliRunner().invoke(app, args, env={"COLUMNS": "120"})
        assert result.exit_code == 0, result.output
    load_help = CliRunner().invoke(app, ["units", "load", "--help"], env={"COLUMNS": "120"})
    assert "--national" in load_help.output and "--province" in load_help.output
    refused = CliRunner().invoke(app, ["units", "load"])
    assert refused.exit_code != 0 and "--national" in refused.output

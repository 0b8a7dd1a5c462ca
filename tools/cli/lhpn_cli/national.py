"""Vietnam's administrative units, from the field's maintained packages — never typed by hand.

Sources (their packaged data files, read through importlib.resources):
- `vietnamadminunits` 1.0.4 — `data/dataset.db` (sqlite): the legacy three-tier tree
  (`admin_units_legacy`: 63 provinces, 696 districts, 10,035 communes) and the 2025 tree as it
  names it (`admin_units`); `data/converter_2025.json`: which legacy commune (or island district)
  became which 2025 commune, including the 471 communes divided between several;
  `data/parser_legacy.json`: the names each legacy commune answered to, which include those of
  the communes merged into it in 2023–24.
- `vietnam-provinces` 2025.10.1 — `data/nested-divisions.json`: the 2025 tree (34 provinces,
  3,321 communes) with the official codes. The two packages number 114 communes differently;
  a 2025 commune of `vietnamadminunits` is matched to `vietnam-provinces` by its accent-free name
  within the province (by code where two share a name), which pairs all 3,321 one to one.

The legacy tree is the one in force just before 1 July 2025 — after the 2023–24 commune
mergers, so not exactly the 2021 tree (Phú Yên's exact 2021 tree is the CSV intake ships).

Unit ids are GSO codes: a province 2 digits, a district 3, a commune 5. A 2025 commune whose
code a legacy commune already used is a different unit (new area, new parent): its id is
`<code>@2025`. A 2025 province keeps the code of one of the provinces it continues, and is the
same unit as that province, renamed when its name changed (15: Yên Bái → Lào Cai). The union's
units follow these one to one, under the national root `VN`.
"""

from __future__ import annotations

import json
import re
import sqlite3
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from importlib.resources import as_file, files
from typing import Any

from lhpn_shared.contracts.units import Unit, UnitLevel, day_before

EFFECTIVE_2025 = date(2025, 7, 1)
"""Resolution 202/2025/QH15 and the 34 provinces' resolutions: two tiers from 1 July 2025."""

ROOT = Unit(
    unit_id="VN",
    name="Trung ương Hội LHPN Việt Nam",
    kind="trung ương",
    level=UnitLevel.national,
)


def name_key(name: str) -> str:
    """Accent-free, lowercase, letters and digits only: 'Phường Hoà Vinh' → 'phuonghoavinh'."""
    decomposed = unicodedata.normalize("NFD", name.replace("đ", "d").replace("Đ", "D"))
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()
    return re.sub(r"[^a-z0-9]", "", plain)


def _kind(division: str) -> str:
    """'Thành phố' → 'thành phố', 'thành phố trung ương' → 'thành phố', 'Thị Trấn' → 'thị trấn'."""
    kind = division.strip().lower()
    return "thành phố" if kind == "thành phố trung ương" else kind


@dataclass
class NationalData:
    legacy: list[Unit]
    """Provinces (under the root), districts and communes in force on 30/06/2025."""
    provinces_2025: dict[str, tuple[str, str]]
    """code → (name, kind)"""
    communes_2025: dict[str, tuple[str, str, str]]
    """code → (name, kind, province code)"""
    successors: dict[str, list[str]]
    """legacy commune code (or island district code) → 2025 commune codes"""
    province_successor: dict[str, str]
    """legacy province code → the 2025 province that continues it"""
    aliases: dict[str, dict[str, str]] = field(default_factory=dict)
    """legacy district code → {name key a commune answered to → legacy commune code}"""

    @property
    def legacy_commune_codes(self) -> set[str]:
        return {u.unit_id for u in self.legacy if u.level is UnitLevel.commune}

    def commune_id_2025(self, code: str) -> str:
        return f"{code}@2025" if code in self.legacy_commune_codes else code

    def predecessors_of(self, province_2025: str) -> list[str]:
        return sorted(p for p, n in self.province_successor.items() if n == province_2025)


def read_national() -> NationalData:
    """Everything from the two packages' data files (about a second)."""
    vau = files("vietnamadminunits") / "data"
    with as_file(vau / "dataset.db") as db_path:
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            legacy_rows = db.execute(
                "SELECT provinceCode, province, provinceKey, districtCode, district, "
                "districtType, districtKey, wardCode, ward, wardType, wardKey "
                "FROM admin_units_legacy"
            ).fetchall()
            new_rows = db.execute(
                "SELECT provinceCode, provinceKey, wardCode, ward, wardKey FROM admin_units"
            ).fetchall()
        finally:
            db.close()
    converter = json.loads((vau / "converter_2025.json").read_text(encoding="utf-8"))
    parser = json.loads((vau / "parser_legacy.json").read_text(encoding="utf-8"))
    nested = json.loads(
        (files("vietnam_provinces") / "data" / "nested-divisions.json").read_text(encoding="utf-8")
    )
    return _build(legacy_rows, new_rows, converter, parser, nested)


def _build(
    legacy_rows: list[tuple[Any, ...]],
    new_rows: list[tuple[Any, ...]],
    converter: dict[str, Any],
    parser: dict[str, Any],
    nested: list[dict[str, Any]],
) -> NationalData:
    # ---- the legacy tree and its keys -----------------------------------------------------
    units: dict[str, Unit] = {}
    legacy_key: dict[str, str] = {}  # "<province>_<district>_<ward>" → commune/district code
    district_of_key: dict[tuple[str, str], str] = {}
    for pc, pname, pkey, dc, dname, dtype, dkey, wc, wname, wtype, wkey in legacy_rows:
        if pc not in units:
            kind = "thành phố" if pname.startswith("Thành phố") else "tỉnh"
            units[pc] = Unit(
                unit_id=pc, name=pname, kind=kind, level=UnitLevel.province, parent_id=ROOT.unit_id
            )
        if dc not in units:
            units[dc] = Unit(
                unit_id=dc, name=dname, kind=_kind(dtype), level=UnitLevel.district, parent_id=pc
            )
        district_of_key[(pkey, dkey)] = dc
        if wc is None:  # an island district without communes (Côn Đảo, Lý Sơn…)
            legacy_key[f"{pkey}_{dkey}_"] = dc
            continue
        units[wc] = Unit(
            unit_id=wc, name=wname, kind=_kind(wtype), level=UnitLevel.commune, parent_id=dc
        )
        legacy_key[f"{pkey}_{dkey}_{wkey}"] = wc

    # ---- the 2025 tree: vietnam-provinces' codes ------------------------------------------
    provinces_2025: dict[str, tuple[str, str]] = {}
    communes_2025: dict[str, tuple[str, str, str]] = {}
    by_name: dict[tuple[str, str], list[str]] = defaultdict(list)
    for p in nested:
        pcode = f"{p['code']:02d}"
        kind = _kind(p["division_type"])
        name = p["name"] if p["name"].startswith("Thành phố") else f"Tỉnh {p['name']}"
        provinces_2025[pcode] = (name, kind)
        for w in p["wards"]:
            wcode = f"{w['code']:05d}"
            communes_2025[wcode] = (" ".join(w["name"].split()), _kind(w["division_type"]), pcode)
            by_name[(pcode, name_key(w["name"]))].append(wcode)
    new_code: dict[tuple[str, str], str] = {}  # (province key, ward key) → official code
    new_province: dict[str, str] = {}  # province key → code
    for pc, pkey, wc, wname, wkey in new_rows:
        new_province[pkey] = pc
        same_name = by_name.get((pc, name_key(wname)), [])
        new_code[(pkey, wkey)] = same_name[0] if len(same_name) == 1 else wc

    # ---- lineage ----------------------------------------------------------------------------
    successors: dict[str, list[str]] = defaultdict(list)
    for pkey, wards in converter["DICT_PROVINCE_WARD_NO_DIVIDED"].items():
        for wkey, olds in wards.items():
            for old in olds:
                successors[legacy_key[old]].append(new_code[(pkey, wkey)])
    for pkey, divided in converter["DICT_PROVINCE_WARD_DIVIDED"].items():
        for old, parts in divided.items():
            for part in parts:
                successors[legacy_key[old]].append(new_code[(pkey, part["newWardKey"])])
    province_successor: dict[str, str] = {}
    legacy_province = {
        pkey: units[district_of_key[(pkey, dkey)]].parent_id for pkey, dkey in district_of_key
    }
    for new_key, olds in converter["DICT_PROVINCE"].items():
        for old in olds:
            province_successor[str(legacy_province[old])] = new_province[new_key]

    # ---- names legacy communes answered to (the 2023–24 mergers) --------------------------
    aliases: dict[str, dict[str, str]] = defaultdict(dict)
    for pkey, districts in parser["DICT_PROVINCE_DISTRICT_WARD_NO_ACCENTED"].items():
        for dkey, wards in districts.items():
            dc = district_of_key.get((pkey, dkey))
            if dc is None:
                continue
            for ward in wards.values():
                for word in ward.get("wardKeywords", []):
                    aliases[dc].setdefault(word, ward["wardCode"])

    return NationalData(
        legacy=[ROOT, *sorted(units.values(), key=lambda u: (u.level != "province", u.unit_id))],
        provinces_2025=provinces_2025,
        communes_2025=communes_2025,
        successors={k: sorted(set(v)) for k, v in successors.items()},
        province_successor=province_successor,
        aliases=dict(aliases),
    )


# ---- what to send intake -------------------------------------------------------------------


def legacy_units(data: NationalData, provinces: set[str] | None = None) -> list[Unit]:
    """The root and the legacy tree (of some provinces only), parents before children."""
    keep = {u.unit_id for u in data.legacy if u.level is UnitLevel.province}
    if provinces is not None:
        keep &= provinces
    chosen = [ROOT]
    districts: set[str] = set()
    for level in (UnitLevel.province, UnitLevel.district, UnitLevel.commune):
        for u in data.legacy:
            if u.level is not level:
                continue
            if (
                (level is UnitLevel.province and u.unit_id in keep)
                or (level is UnitLevel.district and u.parent_id in keep)
                or (level is UnitLevel.commune and u.parent_id in districts)
            ):
                chosen.append(u)
                if level is UnitLevel.district:
                    districts.add(u.unit_id)
    return chosen


class UnresolvedUnits(Exception):
    """Units in intake's tree that the packages cannot place in 2025."""


def reorganisation_2025(
    data: NationalData, province: str, tree: dict[str, Unit]
) -> dict[str, Any] | None:
    """The body of `POST /api/v1/reorganisations` that moves one 2025 province to its new
    tree, given the units intake holds now (`tree`: id → unit). None when nothing is left to
    do. Every unit still open under the provinces it continues closes on 30/06/2025; each
    commune (and island district) is continued by its 2025 communes; districts are dissolved
    without successors (their communes carry the lineage, their records stay theirs and the
    new province answers for them); the provinces merged into it are continued by it; it is
    renamed when its 2025 name differs."""
    eve = day_before(EFFECTIVE_2025)
    olds = data.predecessors_of(province)
    name, kind = data.provinces_2025[province]
    children: dict[str, list[str]] = defaultdict(list)
    for u in tree.values():
        if u.parent_id is not None:
            children[u.parent_id].append(u.unit_id)

    def still_open(uid: str) -> bool:
        u = tree[uid]
        return u.valid_to is None and u.valid_on(eve)

    closing: list[str] = []
    stack = [p for p in olds if p in tree]
    while stack:
        uid = stack.pop()
        if uid != province and still_open(uid):
            closing.append(uid)
        stack.extend(children.get(uid, []))

    taken = data.legacy_commune_codes | {
        u.unit_id for u in tree.values() if u.valid_from != EFFECTIVE_2025
    }
    ids = {
        code: (f"{code}@2025" if code in taken else code)
        for code, (_, _, pcode) in data.communes_2025.items()
        if pcode == province
    }
    create = [
        {
            "unit_id": uid,
            "name": data.communes_2025[code][0],
            "kind": data.communes_2025[code][1],
            "level": "commune",
            "parent_id": province,
        }
        for code, uid in sorted(ids.items())
        if uid not in tree
    ]
    successions: list[dict[str, str]] = []
    unresolved: list[str] = []
    for uid in sorted(closing):
        unit = tree[uid]
        if unit.level is UnitLevel.province:
            successions.append({"predecessor_id": uid, "successor_id": province})
            continue
        codes = data.successors.get(uid)
        if codes is None and unit.level is UnitLevel.commune:
            # a commune merged in 2023–24 (e.g. in the 2021 CSV): follow the one it joined
            joined = data.aliases.get(unit.parent_id or "", {}).get(name_key(unit.name))
            codes = data.successors.get(joined or "")
            if codes is None:
                unresolved.append(f"{unit.name} ({uid})")
                continue
        for code in codes or []:  # a district without successors is dissolved
            successions.append({"predecessor_id": uid, "successor_id": ids[code]})
    if unresolved:
        raise UnresolvedUnits(
            "Không xác định được đơn vị kế thừa năm 2025 của: " + ", ".join(unresolved)
        )
    rename = []
    current = tree.get(province)
    if current is not None and (current.name, current.kind) != (name, kind):
        rename.append({"unit_id": province, "name": name, "kind": kind})
    if not (closing or create or rename):
        return None
    return {
        "reorganisation_id": f"vn-2025-07-01-{province}",
        "effective_on": EFFECTIVE_2025.isoformat(),
        "title": f"Sắp xếp đơn vị hành chính từ 01/07/2025: {name}",
        "create": create,
        "rename": rename,
        "close": sorted(closing),
        "successions": successions,
    }

"""Changes to the unit tree over time (SPEC §2), as pure rules: no I/O, no clock.

Every change an admin makes — create, rename, merge, split, close — and a whole reorganisation
(the July 2025 one: districts end, communes merge and split, provinces merge) is one
`Reorganisation`: units created, renamed and closed on one effective day, and the successions
between them. `plan_reorganisation` checks it against the tree and returns the new state of
every unit it touches (revision + 1), or the reasons to refuse it:
- problems (HTTP 422, naming the field): an unknown unit, a parent of the wrong level, a unit
  named twice, a succession that would make a loop;
- conflicts (HTTP 409): the change contradicts the tree as it is — a unit id already used, a unit
  already closed or not yet open on that day, a parent that will not exist, children left
  without their parent.

A closed unit is valid up to the day before the effective day; a created one from that day. A
succession is recorded on both sides with its kind: `split` when the predecessor goes on in
more than one unit (itself included when it stays open), else `merge` when the successor
continues more than one unit (itself included when it existed before), else `succeed`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from pydantic import BaseModel, Field, model_validator

from lhpn_shared.contracts.units import (
    LEVEL_RANK,
    FormerName,
    LineageChange,
    Unit,
    UnitLevel,
    UnitLink,
    UnitTree,
    day_before,
)

Problem = tuple[tuple[str | int, ...], str]

UNIT_ID = r"^[A-Za-z0-9._@-]{1,32}$"


class NewUnit(BaseModel):
    unit_id: str = Field(pattern=UNIT_ID, description="GSO code, or code@year when reused")
    name: str = Field(min_length=1, max_length=200)
    kind: str = Field(min_length=1, max_length=50, description="tỉnh, xã, phường, đặc khu…")
    level: UnitLevel
    parent_id: str | None = None


class Rename(BaseModel):
    unit_id: str = Field(min_length=1, max_length=32)
    name: str = Field(min_length=1, max_length=200)
    kind: str | None = Field(default=None, min_length=1, max_length=50)


class Succession(BaseModel):
    predecessor_id: str = Field(min_length=1, max_length=32)
    successor_id: str = Field(min_length=1, max_length=32)


class Reorganisation(BaseModel):
    """Units created, renamed and closed on one day, and who continues whom."""

    reorganisation_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9._:@-]{1,120}$",
        description="chosen by the client: sending the same one again applies it once",
    )
    effective_on: date = Field(description="the first day of the new state")
    title: str = Field(default="", max_length=500, description="e.g. the resolution's number")
    create: list[NewUnit] = Field(default_factory=list)
    rename: list[Rename] = Field(default_factory=list)
    close: list[str] = Field(default_factory=list, description="units whose last day is the eve")
    successions: list[Succession] = Field(default_factory=list)

    @model_validator(mode="after")
    def _not_empty(self) -> Reorganisation:
        if not (self.create or self.rename or self.close or self.successions):
            raise ValueError("a reorganisation changes at least one unit")
        return self

    def content(self) -> dict[str, object]:
        """What makes two requests the same change (the id aside)."""
        return self.model_dump(mode="json", exclude={"reorganisation_id"})


@dataclass
class PlannedChange:
    units: list[Unit] = field(default_factory=list)
    """The new state of every unit touched, revision + 1 (new ones: revision 1)."""
    problems: list[Problem] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)

    @property
    def refused(self) -> bool:
        return bool(self.problems or self.conflicts)


def _day(d: date) -> str:
    return f"{d:%d/%m/%Y}"


def plan_reorganisation(tree: UnitTree, change: Reorganisation) -> PlannedChange:
    out = PlannedChange()
    day = change.effective_on
    eve = day_before(day)
    closing = set(change.close)
    created = {u.unit_id: u for u in change.create}
    drafts: dict[str, Unit] = {}

    def draft(unit_id: str) -> Unit:
        if unit_id not in drafts:
            drafts[unit_id] = tree.units[unit_id].model_copy(deep=True)
        return drafts[unit_id]

    def label(unit_id: str) -> str:
        unit = tree.get(unit_id)
        return f"{unit.name} ({unit_id})" if unit is not None else f"'{unit_id}'"

    # ---- every unit is named once per role, and exists where it must ----------------------
    _duplicates(out, "create", [u.unit_id for u in change.create])
    _duplicates(out, "rename", [r.unit_id for r in change.rename])
    _duplicates(out, "close", change.close)
    for i, new in enumerate(change.create):
        if new.unit_id in tree:
            out.conflicts.append(
                f"Mã đơn vị '{new.unit_id}' đã được dùng cho {label(new.unit_id)}; "
                "mỗi mã chỉ dùng cho một đơn vị."
            )
        if new.unit_id in closing:
            out.problems.append(
                (("create", i, "unit_id"), f"Đơn vị '{new.unit_id}' vừa thành lập vừa giải thể.")
            )
    for i, uid in enumerate(change.close):
        unit = tree.get(uid)
        if unit is None:
            out.problems.append((("close", i), f"Không có đơn vị mã '{uid}'."))
        elif unit.valid_to is not None:
            out.conflicts.append(
                f"Đơn vị {label(uid)} đã giải thể từ sau ngày {_day(unit.valid_to)}."
            )
        elif not unit.valid_on(eve):
            out.conflicts.append(
                f"Đơn vị {label(uid)} chưa tồn tại vào ngày {_day(eve)} nên không thể giải thể "
                f"từ ngày {_day(day)}."
            )
    for i, r in enumerate(change.rename):
        unit = tree.get(r.unit_id)
        if unit is None:
            out.problems.append((("rename", i, "unit_id"), f"Không có đơn vị mã '{r.unit_id}'."))
        elif r.unit_id in closing:
            out.problems.append(
                (("rename", i, "unit_id"), f"Đơn vị {label(r.unit_id)} vừa đổi tên vừa giải thể.")
            )
        elif not unit.valid_on(day):
            out.conflicts.append(
                f"Đơn vị {label(r.unit_id)} không tồn tại vào ngày {_day(day)} "
                "nên không thể đổi tên."
            )
        elif unit.former_names and day <= unit.former_names[-1].until:
            out.conflicts.append(
                f"Đơn vị {label(r.unit_id)} đã đổi tên có hiệu lực từ sau ngày "
                f"{_day(unit.former_names[-1].until)}; lần đổi tên mới phải sau ngày đó."
            )

    # ---- parents: valid on the day, of a higher level, no loop ----------------------------
    for i, new in enumerate(change.create):
        where = ("create", i, "parent_id")
        if new.parent_id is None:
            if new.level is not UnitLevel.national:
                out.problems.append((where, f"Đơn vị '{new.unit_id}' cần đơn vị cấp trên."))
            continue
        parent_level: UnitLevel | None = None
        if new.parent_id in created:
            parent_level = created[new.parent_id].level
        elif (parent := tree.get(new.parent_id)) is None:
            out.problems.append((where, f"Không có đơn vị cấp trên mã '{new.parent_id}'."))
        elif new.parent_id in closing or not parent.valid_on(day) or parent.valid_to is not None:
            out.conflicts.append(
                f"Đơn vị cấp trên {label(new.parent_id)} không còn tồn tại từ ngày {_day(day)} "
                f"nên không thể nhận đơn vị mới '{new.unit_id}'."
            )
        else:
            parent_level = parent.level
        if parent_level is not None and LEVEL_RANK[parent_level] >= LEVEL_RANK[new.level]:
            out.problems.append(
                (
                    where,
                    f"Đơn vị cấp {parent_level.value} không thể là cấp trên của đơn vị cấp "
                    f"{new.level.value} '{new.unit_id}'.",
                )
            )
    for new in change.create:
        seen, current = {new.unit_id}, new.parent_id
        while current in created:
            if current in seen:
                out.problems.append(
                    (("create",), f"Đơn vị '{new.unit_id}' nằm trong một vòng cấp trên – cấp dưới.")
                )
                break
            seen.add(current)
            current = created[current].parent_id

    # ---- a closed unit takes its children with it -----------------------------------------
    for uid in change.close:
        if uid not in tree:
            continue
        left = [
            c
            for c in tree.children(uid)
            if c not in closing and tree.units[c].valid_on(day) and tree.units[c].valid_to is None
        ]
        if left:
            shown = ", ".join(label(c) for c in left[:5]) + (" …" if len(left) > 5 else "")
            out.conflicts.append(
                f"Đơn vị {label(uid)} còn {len(left)} đơn vị trực thuộc sau ngày {_day(eve)} "
                f"({shown}): giải thể hoặc chuyển chúng trong cùng lần thay đổi."
            )

    # ---- successions: from a unit of the eve to a unit of the day --------------------------
    pairs: set[tuple[str, str]] = set()
    for i, s in enumerate(change.successions):
        where_p = ("successions", i, "predecessor_id")
        where_s = ("successions", i, "successor_id")
        key = (s.predecessor_id, s.successor_id)
        if key in pairs:
            out.problems.append((("successions", i), "Quan hệ kế thừa này đã được nêu."))
            continue
        pairs.add(key)
        if s.predecessor_id == s.successor_id:
            out.problems.append((where_s, "Một đơn vị không thể kế thừa chính nó."))
            continue
        pred = tree.get(s.predecessor_id)
        if pred is None:
            out.problems.append((where_p, f"Không có đơn vị mã '{s.predecessor_id}'."))
        elif not pred.valid_on(eve):
            out.conflicts.append(
                f"Đơn vị {label(s.predecessor_id)} không tồn tại vào ngày {_day(eve)} nên không "
                "thể có đơn vị kế thừa từ ngày " + _day(day) + "."
            )
        if s.successor_id not in created:
            succ = tree.get(s.successor_id)
            if succ is None:
                out.problems.append((where_s, f"Không có đơn vị mã '{s.successor_id}'."))
            elif s.successor_id in closing or not succ.valid_on(day):
                out.conflicts.append(
                    f"Đơn vị kế thừa {label(s.successor_id)} không tồn tại từ ngày {_day(day)}."
                )
            elif s.successor_id in tree.predecessors(s.predecessor_id):
                out.problems.append(
                    (
                        where_s,
                        f"Đơn vị {label(s.successor_id)} đã là tiền thân của "
                        f"{label(s.predecessor_id)}: quan hệ kế thừa không được tạo vòng.",
                    )
                )
    if out.refused:
        return out

    # ---- the new states ---------------------------------------------------------------------
    for new in change.create:
        drafts[new.unit_id] = Unit(**new.model_dump(), valid_from=day, valid_to=None)
    for r in change.rename:
        unit = draft(r.unit_id)
        if unit.valid_from is None or unit.valid_from < day:
            unit.former_names.append(FormerName(name=unit.name, kind=unit.kind, until=eve))
        unit.name = r.name
        unit.kind = r.kind or unit.kind
    for uid in change.close:
        draft(uid).valid_to = eve

    existed_before = {u for u in tree.units if tree.units[u].valid_on(eve)}
    succ_count: dict[str, int] = {}
    pred_count: dict[str, int] = {}
    for s in change.successions:
        succ_count[s.predecessor_id] = succ_count.get(s.predecessor_id, 0) + 1
        pred_count[s.successor_id] = pred_count.get(s.successor_id, 0) + 1
    for s in change.successions:
        goes_on = succ_count[s.predecessor_id] + (s.predecessor_id not in closing)
        continues = pred_count[s.successor_id] + (s.successor_id in existed_before)
        kind = (
            LineageChange.SPLIT
            if goes_on > 1
            else LineageChange.MERGE
            if continues > 1
            else LineageChange.SUCCEED
        )
        draft(s.predecessor_id).successors.append(
            UnitLink(unit_id=s.successor_id, on=day, change=kind)
        )
        draft(s.successor_id).predecessors.append(
            UnitLink(unit_id=s.predecessor_id, on=day, change=kind)
        )
    out.units = [
        u if u.unit_id in created else u.model_copy(update={"revision": u.revision + 1})
        for u in sorted(drafts.values(), key=lambda u: u.unit_id)
    ]
    return out


def _duplicates(out: PlannedChange, where: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for i, uid in enumerate(ids):
        if uid in seen:
            out.problems.append(((where, i), f"Đơn vị '{uid}' được nêu hai lần."))
        seen.add(uid)


def load_problems(tree: UnitTree, units: list[Unit]) -> list[Problem]:
    """Why a batch of units to load (created when missing) would break the tree: a parent that
    is neither stored nor in the batch, a parent of the same or a lower level, a unit valid
    before it begins, a loop of parents."""
    problems: list[Problem] = []
    batch = {u.unit_id: u for u in units}
    for i, u in enumerate(units):
        if u.valid_from and u.valid_to and u.valid_to < u.valid_from:
            problems.append(
                ((i, "valid_to"), f"Đơn vị '{u.unit_id}': ngày kết thúc trước ngày bắt đầu.")
            )
        if u.parent_id is None:
            continue
        parent = batch.get(u.parent_id) or tree.get(u.parent_id)
        if parent is None:
            problems.append(
                ((i, "parent_id"), f"Đơn vị '{u.unit_id}': không có cấp trên '{u.parent_id}'.")
            )
        elif LEVEL_RANK[parent.level] >= LEVEL_RANK[u.level]:
            problems.append(
                (
                    (i, "parent_id"),
                    f"Đơn vị '{u.unit_id}' (cấp {u.level.value}) không thể trực thuộc đơn vị "
                    f"cấp {parent.level.value} '{parent.unit_id}'.",
                )
            )
    return problems


def lineage(tree: UnitTree, unit_id: str) -> dict[str, list[dict[str, object]]]:
    """Predecessors and successors of a unit, transitively, each with the day and kind of the
    change and the unit it was linked from (nearest first)."""

    def side(name: str) -> list[dict[str, object]]:
        rows: list[dict[str, object]] = []
        for via, link in tree.lineage_links(unit_id, name):
            other = tree.get(link.unit_id)
            rows.append(
                {
                    "unit_id": link.unit_id,
                    "name": other.name if other else None,
                    "level": other.level if other else None,
                    "valid_from": other.valid_from if other else None,
                    "valid_to": other.valid_to if other else None,
                    "on": link.on,
                    "change": link.change,
                    "via": via,
                }
            )
        return rows

    return {"predecessors": side("predecessors"), "successors": side("successors")}

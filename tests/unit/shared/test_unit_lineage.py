"""The unit tree over time: which units are valid on a day, and who continues whom."""

from __future__ import annotations

from datetime import date

from lhpn_shared.contracts.units import LineageChange, Unit, UnitLevel, UnitLink, UnitTree

JULY = date(2025, 7, 1)
LAST_DAY = date(2025, 6, 30)


def unit(uid: str, level: UnitLevel, parent: str | None, **kw: object) -> Unit:
    return Unit(unit_id=uid, name=f"Đơn vị {uid}", kind="xã", level=level, parent_id=parent, **kw)


def merged_tree() -> UnitTree:
    """Province P keeps going; district D and its communes A, B end on 30/06/2025; A and B
    merge into N (under P directly) and C splits into X and Y."""

    def link(uid: str, change: LineageChange) -> list[UnitLink]:
        return [UnitLink(unit_id=uid, on=JULY, change=change)]

    old = {"valid_to": LAST_DAY}
    new = {"valid_from": JULY}
    return UnitTree(
        [
            unit("P", UnitLevel.province, None),
            unit("D", UnitLevel.district, "P", **old),
            unit("A", UnitLevel.commune, "D", successors=link("N", LineageChange.MERGE), **old),
            unit("B", UnitLevel.commune, "D", successors=link("N", LineageChange.MERGE), **old),
            unit(
                "C",
                UnitLevel.commune,
                "D",
                successors=[
                    UnitLink(unit_id="X", on=JULY, change=LineageChange.SPLIT),
                    UnitLink(unit_id="Y", on=JULY, change=LineageChange.SPLIT),
                ],
                **old,
            ),
            unit(
                "N",
                UnitLevel.commune,
                "P",
                predecessors=[
                    UnitLink(unit_id="A", on=JULY, change=LineageChange.MERGE),
                    UnitLink(unit_id="B", on=JULY, change=LineageChange.MERGE),
                ],
                **new,
            ),
            unit("X", UnitLevel.commune, "P", predecessors=link("C", LineageChange.SPLIT), **new),
            unit("Y", UnitLevel.commune, "P", predecessors=link("C", LineageChange.SPLIT), **new),
        ]
    )


def test_the_tree_of_a_day_holds_only_the_units_valid_that_day() -> None:
    tree = merged_tree()
    assert tree.as_of(LAST_DAY).subtree("P") == ["P", "D", "A", "B", "C"]
    assert tree.as_of(JULY).subtree("P") == ["P", "N", "X", "Y"]


def test_a_merged_unit_continues_each_of_its_predecessors() -> None:
    tree = merged_tree()
    assert sorted(tree.predecessors("N")) == ["A", "B"]
    assert tree.successors("A") == ["N"]
    assert tree.successors("C") == ["X", "Y"]
    assert tree.predecessors("X") == ["C"]
    assert tree.predecessors("P") == []


def test_lineage_follows_several_reorganisations() -> None:
    later = date(2027, 1, 1)
    tree = UnitTree(
        [
            unit(
                "A",
                UnitLevel.commune,
                None,
                valid_to=LAST_DAY,
                successors=[UnitLink(unit_id="N", on=JULY, change=LineageChange.SUCCEED)],
            ),
            unit(
                "N",
                UnitLevel.commune,
                None,
                valid_from=JULY,
                valid_to=date(2026, 12, 31),
                predecessors=[UnitLink(unit_id="A", on=JULY, change=LineageChange.SUCCEED)],
                successors=[UnitLink(unit_id="M", on=later, change=LineageChange.MERGE)],
            ),
            unit(
                "M",
                UnitLevel.commune,
                None,
                valid_from=later,
                predecessors=[UnitLink(unit_id="N", on=later, change=LineageChange.MERGE)],
            ),
        ]
    )
    assert tree.predecessors("M") == ["N", "A"]
    assert tree.successors("A") == ["N", "M"]

"""A generated reorganisation on 1 July 2025 — districts end, communes merge and split into
communes under the province — under a 2025 plan, with reports before and after the change.
Reminders (what is owed, who is reminded, which parent gets the digest) and case access for the
merged communes are compared with a recount written here from the rules in words (SPEC §3, §6,
§7 and the units-over-time rules in docs), not from the services' code or tables:

- a unit owes a report of a schedule when its level reports under it and it exists on the last
  day before the due instant (due "before the 16th 00:00" → it must exist on the 15th);
- it reports to its parent;
- until it has reported: reminded 3 days and 1 day before the due instant, 1 and 3 days after;
  5 days after, its parent gets one digest per report type and period listing its late children;
- a case of a commune is held by the commune while it exists, then by the communes that
  continue it: only their staff see its personal data and act on it (none of these cases is
  referred up); staff of a unit above a holder may come near it (its facts, as for any case of
  their subtree); staff of the commune that received it, and of the units above that commune
  then, keep the facts only; anyone else nothing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pytest

from cases.domain.access import Access
from cases.domain.succession import case_access_on, sees_personal_data_on
from cases.domain.workflow import open_case
from intake.unit_rules import NewUnit, Reorganisation, Succession, plan_reorganisation
from lhpn_shared.auth import Principal, Role
from lhpn_shared.clock import LOCAL_TZ
from lhpn_shared.contracts.cases import CaseChannel, CaseKind
from lhpn_shared.contracts.plans import Plan, ReportSchedule, SchedulePeriod
from lhpn_shared.contracts.units import Unit, UnitLevel, UnitTree
from reminders.domain.messages import ParentDigest
from reminders.domain.obligations import derive_obligations, fulfil
from reminders.domain.policy import ReminderPolicy, due_reminders

JULY = date(2025, 7, 1)
STATE = open_case(
    kind=CaseKind.complaint,
    channel=CaseChannel.letter,
    received_on=date(2025, 6, 2),
    actor="staff",
    at=datetime(2025, 6, 2, 9, tzinfo=LOCAL_TZ),
)
P, D, C = UnitLevel.province, UnitLevel.district, UnitLevel.commune


def vn(y: int, m: int, d: int, h: int = 0) -> datetime:
    return datetime(y, m, d, h, tzinfo=LOCAL_TZ)


@dataclass
class Scenario:
    tree: UnitTree
    parent: dict[str, str | None]
    valid: dict[str, tuple[date | None, date | None]]
    continues: dict[str, list[str]]  # old commune → new communes
    plan: Plan
    reports: dict[tuple[str, str, str], datetime]  # (unit, type, period) → received at


def generate(seed: int) -> Scenario:
    rnd = random.Random(seed)
    n_districts, n_communes, n_new = rnd.randint(2, 3), rnd.randint(6, 10), rnd.randint(3, 5)
    units = [Unit(unit_id="P", name="Tỉnh P", kind="tỉnh", level=P)]
    districts = [f"D{i}" for i in range(n_districts)]
    olds = [f"C{i}" for i in range(n_communes)]
    news = [f"N{i}" for i in range(n_new)]
    units += [Unit(unit_id=d, name=d, kind="huyện", level=D, parent_id="P") for d in districts]
    units += [
        Unit(unit_id=c, name=c, kind="xã", level=C, parent_id=rnd.choice(districts)) for c in olds
    ]
    # every new commune continues at least one old one; some old ones are split in two
    continues = {c: [news[i % n_new]] for i, c in enumerate(olds)}
    for c in olds:
        if rnd.random() < 0.3:
            other = rnd.choice([n for n in news if n not in continues[c]])
            continues[c].append(other)
    change = Reorganisation(
        effective_on=JULY,
        create=[NewUnit(unit_id=n, name=n, kind="xã", level=C, parent_id="P") for n in news],
        close=[*olds, *districts],
        successions=[
            Succession(predecessor_id=c, successor_id=n) for c in olds for n in continues[c]
        ],
    )
    before = UnitTree(units)
    planned = plan_reorganisation(before, change)
    assert not planned.refused, (planned.problems, planned.conflicts)
    after = {u.unit_id: u for u in units} | {u.unit_id: u for u in planned.units}
    tree = UnitTree(after.values())
    parent = {u.unit_id: u.parent_id for u in after.values()}
    eve = JULY - timedelta(days=1)
    valid: dict[str, tuple[date | None, date | None]] = {"P": (None, None)}
    valid |= {u: (None, eve) for u in [*olds, *districts]}
    valid |= {n: (JULY, None) for n in news}

    monthly = [
        SchedulePeriod(
            period=f"2025-{m:02d}",
            window_start_on=date(2025, m - 1, 15) if m > 1 else date(2024, 12, 15),
            window_end_on=date(2025, m, 14),
            due_at={C: vn(2025, m, 16), D: vn(2025, m, 18)},
        )
        for m in range(1, 13)
    ]
    plan = Plan(
        plan_id="GEN-2025",
        year=2025,
        number="1/KH",
        issuing_unit_id="P",
        title="Kế hoạch 2025",
        report_schedules=[
            ReportSchedule(report_type="monthly", title="Tháng", levels=[C, D], periods=monthly),
            ReportSchedule(
                report_type="half",
                title="6 tháng",
                levels=[D],
                periods=[
                    SchedulePeriod(
                        period="2025-H1",
                        window_start_on=date(2024, 12, 15),
                        window_end_on=date(2025, 6, 14),
                        due_at={D: vn(2025, 6, 18)},
                    )
                ],
            ),
            ReportSchedule(
                report_type="annual",
                title="Năm",
                levels=[D],
                periods=[
                    SchedulePeriod(
                        period="2025",
                        window_start_on=date(2024, 12, 15),
                        window_end_on=date(2025, 12, 14),
                        due_at={D: vn(2025, 12, 18)},
                    )
                ],
            ),
        ],
    )
    reports: dict[tuple[str, str, str], datetime] = {}
    for uid in after:
        for schedule in plan.report_schedules:
            for period in schedule.periods:
                if rnd.random() < 0.5:
                    due = max(period.due_at.values())
                    reports[(uid, schedule.report_type, period.period)] = due + timedelta(
                        days=rnd.randint(-6, 8), hours=rnd.randint(0, 23)
                    )
    return Scenario(tree, parent, valid, continues, plan, reports)


# ---- the recount, from the rules in words ---------------------------------------------------

STEP_OFFSETS = {"before_3d": -3, "due_day": -1, "after_1d": 1, "after_3d": 3}


def exists_on(s: Scenario, uid: str, day: date) -> bool:
    start, end = s.valid[uid]
    return (start is None or start <= day) and (end is None or day <= end)


def owed(s: Scenario) -> dict[tuple[str, str, str], datetime]:
    """(unit, type, period) → due instant, from the schedule table typed here."""
    table: list[tuple[str, str, dict[UnitLevel, datetime]]] = [
        ("monthly", f"2025-{m:02d}", {C: vn(2025, m, 16), D: vn(2025, m, 18)}) for m in range(1, 13)
    ]
    table += [("half", "2025-H1", {D: vn(2025, 6, 18)}), ("annual", "2025", {D: vn(2025, 12, 18)})]
    out = {}
    for uid, unit in s.tree.units.items():
        for report_type, period, dues in table:
            if unit.level in dues:
                due = dues[unit.level]
                if exists_on(s, uid, due.date() - timedelta(days=1)):
                    out[(uid, report_type, period)] = due
    return out


def recount_reminders(s: Scenario, as_of: datetime) -> set[tuple[object, ...]]:
    messages: set[tuple[object, ...]] = set()
    late: dict[tuple[str, str, str], list[str]] = {}
    for (uid, report_type, period), due in owed(s).items():
        received = s.reports.get((uid, report_type, period))
        if received is not None and received <= as_of:
            continue
        for step, days in STEP_OFFSETS.items():
            if due + timedelta(days=days) <= as_of:
                messages.add((step, uid, report_type, period, uid))
        if due + timedelta(days=5) <= as_of and s.parent[uid] is not None:
            late.setdefault((str(s.parent[uid]), report_type, period), []).append(uid)
    for (parent, report_type, period), children in late.items():
        messages.add(("parent_digest", parent, report_type, period, tuple(sorted(children))))
    return messages


def ancestors(s: Scenario, uid: str) -> list[str]:
    out, p = [], s.parent[uid]
    while p is not None:
        out.append(p)
        p = s.parent[p]
    return out


def holders(s: Scenario, case_unit: str, day: date) -> list[str]:
    return [case_unit] if exists_on(s, case_unit, day) else s.continues[case_unit]


def recount_access(s: Scenario, staff_unit: str, case_unit: str, day: date) -> Access:
    if any(staff_unit == h or staff_unit in ancestors(s, h) for h in holders(s, case_unit, day)):
        return Access.personal
    if staff_unit == case_unit or staff_unit in ancestors(s, case_unit):
        return Access.facts
    return Access.none


def recount_sees_personal_data(s: Scenario, staff_unit: str, case_unit: str, day: date) -> bool:
    return staff_unit in holders(s, case_unit, day)


# ---- the services' code against it ----------------------------------------------------------


def service_reminders(s: Scenario, as_of: datetime) -> set[tuple[object, ...]]:
    obligations = []
    for ob in derive_obligations(s.plan, s.tree):
        received = s.reports.get((ob.unit_id, ob.report_type, ob.period))
        obligations.append(fulfil(ob, received) if received is not None else ob)
    out: set[tuple[object, ...]] = set()
    for m in due_reminders(obligations, ReminderPolicy(), as_of, set()):
        if isinstance(m, ParentDigest):
            out.add((m.step, m.recipient_unit_id, m.report_type, m.period, m.late_unit_ids))
        else:
            out.add((m.step, m.recipient_unit_id, m.report_type, m.period, m.unit_id))
    return out


@pytest.mark.parametrize("seed", range(8))
def test_reminders_across_the_reorganisation_equal_the_recount(seed: int) -> None:
    s = generate(seed)
    for as_of in (vn(2025, 6, 25), vn(2025, 7, 25, 8), vn(2025, 12, 31)):
        expected = recount_reminders(s, as_of)
        assert service_reminders(s, as_of) == expected, as_of
    # and the scenario does exercise both sides of the change
    assert any(k[0].startswith("C") and k[2] == "2025-06" for k in owed(s))
    assert not any(k[0].startswith(("C", "D")) and k[2] in ("2025-07", "2025") for k in owed(s))
    assert any(k[0].startswith("N") and k[2] == "2025-07" for k in owed(s))


@pytest.mark.parametrize("seed", range(8))
def test_case_access_for_merged_communes_equals_the_recount(seed: int) -> None:
    s = generate(seed)
    staff_units = list(s.tree.units)
    cases = [u for u in s.tree.units if u.startswith("C")]
    for day in (date(2025, 6, 30), JULY, date(2025, 11, 3)):
        for staff_unit in staff_units:
            role = {P: Role.province_staff, D: Role.district_staff, C: Role.commune_staff}[
                s.tree.units[staff_unit].level
            ]
            principal = Principal(subject=f"staff-{staff_unit}", role=role, unit_id=staff_unit)
            for case_unit in cases:
                got = case_access_on(principal, case_unit, s.tree, day)
                where = (staff_unit, case_unit, day)
                assert got is recount_access(s, staff_unit, case_unit, day), where
                sees = sees_personal_data_on(principal, case_unit, STATE, s.tree, day)
                assert sees is recount_sees_personal_data(s, staff_unit, case_unit, day), where

"""A generated reorganisation like July 2025's, and an independent recount of its figures.

`scenario(seed)`: a 2025 plan over two provinces of three tiers. On 1 July 2025 the districts
end, province B merges into province A, and the communes of both are merged into new communes
directly under A (two or three into one), one is split in two, one continues under a new code.
Activities and monthly reports come before and after the change; the reorganisation itself is
announced afterwards (`unit.upserted` revisions closing the old units and opening the new
ones), with the lineage sometimes known from one side only.

The `recount_*` functions answer from the raw events with the rules of issue 10, written here
from their wording and sharing no code with the service:
- a target's units in scope are those of its levels valid on the as-of day (clamped to the
  plan year; once the year is over, the units that exist at its end);
- a unit has done what its predecessors did before the change, in the plan year;
- a report is expected from a unit of the schedule's levels that exists on the report date (the
  last day it can be sent on time); a report received from a unit valid during the data window
  stays with it.
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from lhpn_shared.contracts.activities import Activity, ActivityKind
from lhpn_shared.contracts.events import Envelope, make_event, parse_data
from lhpn_shared.contracts.plans import Plan
from lhpn_shared.contracts.reports import Report
from lhpn_shared.contracts.units import LineageChange, Unit, UnitLevel, UnitLink

VN = ZoneInfo("Asia/Ho_Chi_Minh")
YEAR = 2025
CHANGE = date(2025, 7, 1)
LAST_OLD_DAY = date(2025, 6, 30)
PLAN_ID = "KH-2025-GS"
KINDS = [
    ActivityKind.supervision,
    ActivityKind.draft_comment,
    ActivityKind.opinion_digest,
    ActivityKind.representation,
    ActivityKind.decree56_meeting,
    ActivityKind.social_criticism,
]


def plan_2025() -> Plan:
    """T1–T6 as in the SPEC's table, over 2025, with the monthly reports of 2025."""

    def target(code: str, levels: list[str], kinds: list[str], **kw: Any) -> dict[str, Any]:
        return {
            "code": code,
            "title": f"Chỉ tiêu {code}",
            "levels": levels,
            "activity_kinds": kinds,
            **kw,
        }

    every = ["province", "district", "commune"]
    periods = []
    for month in range(1, 13):
        start = date(YEAR, month, 15) - timedelta(days=31)
        periods.append(
            {
                "period": f"{YEAR}-{month:02d}",
                "window_start_on": date(start.year, start.month, 15).isoformat(),
                "window_end_on": date(YEAR, month, 14).isoformat(),
                "due_at": {
                    "commune": f"{YEAR}-{month:02d}-16T00:00:00+07:00",
                    "district": f"{YEAR}-{month:02d}-18T00:00:00+07:00",
                },
            }
        )
    return Plan.model_validate(
        {
            "plan_id": PLAN_ID,
            "year": YEAR,
            "number": "12/KH-BTV",
            "issuing_unit_id": "A",
            "title": "Kế hoạch giám sát, phản biện xã hội năm 2025",
            "targets": [
                target("T1", ["province"], ["supervision"]),
                target("T2", ["district", "commune"], ["supervision"]),
                target("T3", every, ["draft_comment", "social_criticism"]),
                target("T4", ["district", "commune"], ["opinion_digest"]),
                target("T5", every, ["representation"]),
                target("T6", every, ["decree56_meeting"], rule="each_ended_half_year"),
            ],
            "report_schedules": [
                {
                    "report_type": "monthly",
                    "title": "Báo cáo tháng",
                    "levels": ["district", "commune"],
                    "periods": periods,
                }
            ],
        }
    )


@dataclass
class Scenario:
    plan: Plan
    before: list[Unit]
    """the units as first announced (no end, no lineage)"""
    after: list[Unit]
    """the units once the reorganisation is announced (closing revisions and new units)"""
    merged: dict[str, list[str]] = field(default_factory=dict)
    """new commune → the old communes it continues"""
    activities: list[Envelope] = field(default_factory=list)
    reports: list[Envelope] = field(default_factory=list)

    def events(self) -> list[Envelope]:
        """In the order things happened: the old tree, the plan, the first half's work, the
        reorganisation, the second half's work."""
        first, second = _split(self.activities + self.reports)
        return [
            *(_unit_event(u) for u in self.before),
            make_event("plan.published", self.plan, source="test", occurred_at=_at(1, 2)),
            *first,
            *(_unit_event(u) for u in self.after),
            *second,
        ]

    def announced_late(self) -> list[Envelope]:
        """The whole year's work first, the reorganisation announced only afterwards."""
        first, second = _split(self.activities + self.reports)
        return [
            *(_unit_event(u) for u in self.before),
            make_event("plan.published", self.plan, source="test", occurred_at=_at(1, 2)),
            *first,
            *second,
            *(_unit_event(u) for u in self.after),
        ]


def _at(month: int, day: int) -> datetime:
    return datetime(YEAR, month, day, 9, tzinfo=VN)


def _unit_event(unit: Unit) -> Envelope:
    return make_event("unit.upserted", unit, source="test", occurred_at=_at(1, 1))


def _split(events: list[Envelope]) -> tuple[list[Envelope], list[Envelope]]:
    first = [e for e in events if e.occurred_at.date() < CHANGE]
    return first, [e for e in events if e.occurred_at.date() >= CHANGE]


def _unit(uid: str, name: str, kind: str, level: UnitLevel, parent: str | None) -> Unit:
    return Unit(unit_id=uid, name=name, kind=kind, level=level, parent_id=parent)


def scenario(seed: int) -> Scenario:
    rng = random.Random(seed)
    before: list[Unit] = [
        _unit("A", "Tỉnh An Phú", "tỉnh", UnitLevel.province, None),
        _unit("B", "Tỉnh Bình Sơn", "tỉnh", UnitLevel.province, None),
    ]
    old_communes: list[Unit] = []
    for province in ("A", "B"):
        for d in range(3 if province == "A" else 2):
            district = _unit(
                f"{province}D{d}", f"Huyện {province}{d}", "huyện", UnitLevel.district, province
            )
            before.append(district)
            for c in range(rng.randint(4, 6)):
                commune = _unit(
                    f"{district.unit_id}C{c}",
                    f"Xã {province}{d}-{c}",
                    "xã",
                    UnitLevel.commune,
                    district.unit_id,
                )
                before.append(commune)
                old_communes.append(commune)

    # the reorganisation: groups of old communes → new communes under A
    pool = old_communes[:]
    rng.shuffle(pool)
    split_one, succeeded = pool.pop(), pool.pop()
    groups: list[list[Unit]] = []
    while pool:
        size = min(len(pool), rng.choice([2, 2, 3]))
        groups.append([pool.pop() for _ in range(size)])
    merged: dict[str, list[str]] = {}
    successors: dict[str, list[UnitLink]] = defaultdict(list)
    new_units: list[Unit] = []

    def opened(uid: str, name: str, sources: list[Unit], change: LineageChange) -> None:
        # the lineage is sometimes stated by the new unit only, sometimes by the old ones only
        side = rng.choice(["both", "both", "new", "old"])
        links = [UnitLink(unit_id=s.unit_id, on=CHANGE, change=change) for s in sources]
        new_units.append(
            Unit(
                unit_id=uid,
                name=name,
                kind="xã",
                level=UnitLevel.commune,
                parent_id="A",
                valid_from=CHANGE,
                predecessors=links if side != "old" else [],
            )
        )
        merged[uid] = [s.unit_id for s in sources]
        if side != "new":
            for s in sources:
                successors[s.unit_id].append(UnitLink(unit_id=uid, on=CHANGE, change=change))

    for n, group in enumerate(groups):
        opened(f"N{n:02d}", f"Xã Mới {n}", group, LineageChange.MERGE)
    opened("S1", "Xã Tách Một", [split_one], LineageChange.SPLIT)
    opened("S2", "Xã Tách Hai", [split_one], LineageChange.SPLIT)
    opened("K1", "Phường Kế Tục", [succeeded], LineageChange.SUCCEED)

    after: list[Unit] = []
    for unit in before:
        if unit.unit_id == "A":
            continue  # province A continues unchanged
        links = successors.get(unit.unit_id, [])
        if unit.unit_id == "B":
            links = [UnitLink(unit_id="A", on=CHANGE, change=LineageChange.MERGE)]
        after.append(
            unit.model_copy(update={"valid_to": LAST_OLD_DAY, "successors": links, "revision": 2})
        )
    after += new_units
    rng.shuffle(after)

    out = Scenario(plan_2025(), before, after, merged)
    old_ids = [u.unit_id for u in before]
    new_ids = ["A", *[u.unit_id for u in new_units]]
    _activities(rng, out, old_ids, new_ids)
    _reports(rng, out, before, new_units)
    return out


def _activities(rng: random.Random, out: Scenario, old: list[str], new: list[str]) -> None:
    def record(unit_id: str, day: date) -> None:
        kind = rng.choice(KINDS)
        activity = Activity(
            activity_id=uuid.UUID(int=rng.getrandbits(128)),
            unit_id=unit_id,
            kind=kind,
            occurred_on=day,
            title=f"Hoạt động {kind.value}",
        )
        at = datetime.combine(day, time(17), tzinfo=VN)
        out.activities.append(make_event("activity.recorded", activity, source="t", occurred_at=at))

    for unit_id in old:  # some old units do little, some much, before the change
        for _ in range(rng.choice([0, 1, 2, 4, 7])):
            record(unit_id, date(YEAR, 1, 1) + timedelta(days=rng.randrange(181)))
    for unit_id in new:
        for _ in range(rng.choice([0, 0, 1, 3])):
            record(unit_id, CHANGE + timedelta(days=rng.randrange(184)))
    record(old[-1], LAST_OLD_DAY)  # the edges of the change
    record(new[-1], CHANGE)


def _reports(rng: random.Random, out: Scenario, before: list[Unit], new: list[Unit]) -> None:
    schedule = out.plan.report_schedules[0]
    reporters_before = [u for u in before if u.level in schedule.levels]
    for period in schedule.periods:
        month = int(period.period[5:])
        units = reporters_before if month <= 6 else new
        for unit in units:
            if rng.random() < 0.2:
                continue
            due = period.due_at[unit.level]
            received = due + timedelta(hours=rng.randint(-120, 30))
            _report(out, unit.unit_id, period.period, received, due)
    # an old commune sends July's report early, before it closes: it stays with it
    early = next(u for u in reporters_before if u.level is UnitLevel.commune)
    july = schedule.period(f"{YEAR}-07")
    assert july is not None
    _report(
        out,
        early.unit_id,
        july.period,
        datetime(YEAR, 6, 28, 10, tzinfo=VN),
        july.due_at[UnitLevel.commune],
    )


def _report(out: Scenario, unit_id: str, period: str, received: datetime, due: datetime) -> None:
    report = Report(
        report_id=uuid.uuid4(),
        unit_id=unit_id,
        report_type="monthly",
        period=period,
        indicators={"supervision.count": 1},
        received_at=received,
        due_at=due,
        on_time=received < due,
    )
    out.reports.append(make_event("report.submitted", report, source="t", occurred_at=received))


# --- the recount --------------------------------------------------------------------------------


@dataclass
class Facts:
    """What the raw events say, each entity in its latest revision."""

    units: dict[str, Unit]
    plan: Plan
    activities: list[Activity]
    reports: dict[tuple[str, str], Report]
    """(unit, period) → report"""


def facts_of(events: list[Envelope]) -> Facts:
    units: dict[str, Unit] = {}
    activities: dict[uuid.UUID, Activity] = {}
    reports: dict[tuple[str, str], Report] = {}
    plan = None
    for event in events:
        data = parse_data(event)
        if isinstance(data, Unit):
            if data.unit_id not in units or data.revision > units[data.unit_id].revision:
                units[data.unit_id] = data
        elif isinstance(data, Plan):
            plan = data
        elif isinstance(data, Activity):
            activities[data.activity_id] = data
        elif isinstance(data, Report):
            reports[(data.unit_id, data.period)] = data
    assert plan is not None
    return Facts(units, plan, list(activities.values()), reports)


def _under(facts: Facts, root: str) -> list[str]:
    """Units whose chain of parents reaches `root` (the root included), by id."""
    out = []
    for unit_id in facts.units:
        node: str | None = unit_id
        while node is not None and node != root:
            node = facts.units[node].parent_id if node in facts.units else None
        if node == root:
            out.append(unit_id)
    return sorted(out)


def _valid(unit: Unit, day: date) -> bool:
    return (unit.valid_from is None or unit.valid_from <= day) and (
        unit.valid_to is None or day <= unit.valid_to
    )


def _credited(facts: Facts, unit_id: str) -> dict[str, date]:
    """Every unit whose activities `unit_id` is credited with, and the last day that counts."""
    preds: dict[str, dict[str, date]] = defaultdict(dict)
    for unit in facts.units.values():
        for link in unit.predecessors:
            preds[unit.unit_id][link.unit_id] = link.on
        for link in unit.successors:
            preds[link.unit_id].setdefault(unit.unit_id, link.on)
    last = {unit_id: date(YEAR, 12, 31)}
    todo = [unit_id]
    while todo:
        current = todo.pop()
        for before, on in preds[current].items():
            day = min(last[current], on - timedelta(days=1))
            if day >= date(YEAR, 1, 1) and day > last.get(before, date.min):
                last[before] = day
                todo.append(before)
    return last


@dataclass
class Count:
    in_scope: int = 0
    met: int = 0
    not_met: list[str] = field(default_factory=list)


def recount_compliance(facts: Facts, root: str, as_of: datetime) -> dict[str, dict[str, Count]]:
    """target code → {"": the root's subtree, child id: that child's subtree}."""
    day = as_of.astimezone(VN).date()
    start, end = date(YEAR, 1, 1), date(YEAR, 12, 31)
    scope_day = min(max(day, start), end)
    halves = [(start, date(YEAR, 6, 30)), (date(YEAR, 7, 1), end)]
    ended = [h for h in halves if day > h[1]]
    children = [u for u in sorted(facts.units) if facts.units[u].parent_id == root]
    branch = {u: c for c in children for u in _under(facts, c)}
    out: dict[str, dict[str, Count]] = {}
    for target in facts.plan.targets:
        counts: dict[str, Count] = defaultdict(Count)
        for unit_id in _under(facts, root):
            unit = facts.units[unit_id]
            if unit.level not in target.levels or not _valid(unit, scope_day):
                continue
            sources = _credited(facts, unit_id)
            days = [
                a.occurred_on
                for a in facts.activities
                if a.unit_id in sources
                and a.kind in target.activity_kinds
                and start <= a.occurred_on <= sources[a.unit_id]
            ]
            if target.rule == "any_in_year":
                met = sum(d <= day for d in days) >= target.min_count
            else:
                met = bool(ended) and all(
                    sum(a <= d <= b for d in days) >= target.min_count for a, b in ended
                )
            for key in ("", branch.get(unit_id)):
                if key is None:
                    continue
                counts[key].in_scope += 1
                counts[key].met += met
                if not met:
                    counts[key].not_met.append(unit_id)
        out[target.code] = dict(counts)
    return out


@dataclass
class Rates:
    expected: int = 0
    received: int = 0
    on_time: int = 0
    missing: list[str] = field(default_factory=list)
    late: list[str] = field(default_factory=list)


def recount_rates(facts: Facts, root: str, period: str) -> dict[str, Rates]:
    """{"": the root's subtree, child id: that child's subtree} for one monthly period."""
    schedule = facts.plan.report_schedules[0]
    p = schedule.period(period)
    assert p is not None
    assert p.window_end_on is not None
    children = [u for u in sorted(facts.units) if facts.units[u].parent_id == root]
    branch = {u: c for c in children for u in _under(facts, c)}
    out: dict[str, Rates] = defaultdict(Rates)
    for unit_id in _under(facts, root):
        unit = facts.units[unit_id]
        if unit.level not in schedule.levels:
            continue
        in_window = (unit.valid_from is None or unit.valid_from <= p.window_end_on) and (
            unit.valid_to is None or p.window_start_on <= unit.valid_to
        )
        report = facts.reports.get((unit_id, period))
        last_day = (p.due_at[unit.level].astimezone(VN) - timedelta(microseconds=1)).date()
        expected = _valid(unit, last_day)  # it exists on the report date
        if not expected and (report is None or not in_window):
            continue
        for key in ("", branch.get(unit_id)):
            if key is None:
                continue
            rates = out[key]
            rates.expected += 1
            if report is None:
                rates.missing.append(unit_id)
            else:
                rates.received += 1
                if report.on_time:
                    rates.on_time += 1
                else:
                    rates.late.append(unit_id)
    return dict(out)

"""Seeded random events over the real default data, and a reference computation over them.

`generate(seed)` reads the default units and plan (the files the set-up loads) and makes the
events the aggregation service consumes — `activity.recorded` with corrections that move an
activity to another kind, date or unit, `activity.voided`, `report.submitted` with
resubmissions, `case.*` — as envelopes, each entity's events in revision order.

The `reference_*` functions answer the same questions as the service, the obvious way: walk
the raw events, keep each entity's latest revision, filter, count. They share no code with the
service, so they can be trusted to check it (and, later, the read model behind the HTTP API).

Import as `tests.unit.aggregation.generated`.
"""

from __future__ import annotations

import calendar
import csv
import json
import random
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from lhpn_shared.contracts.activities import METRICS, Activity, ActivityKind
from lhpn_shared.contracts.cases import (
    CaseChannel,
    CaseFacts,
    CaseKind,
    CaseStatus,
    CaseStatusChange,
    CaseTopic,
)
from lhpn_shared.contracts.events import ActivityVoided, Envelope, make_event, parse_data
from lhpn_shared.contracts.plans import Plan
from lhpn_shared.contracts.reports import Report
from lhpn_shared.contracts.units import Unit, UnitLevel

DATA = Path(__file__).resolve().parents[3] / "services" / "intake" / "intake" / "data"
VN = ZoneInfo("Asia/Ho_Chi_Minh")
FLAGS = ["poor_household", "ethnic_minority", "disability", "domestic_violence_victim"]
OUTCOMES = {
    "declined",
    "resolved",
    "referred",
    "mediation_succeeded",
    "mediation_failed",
    "withdrawn",
}


def load_units() -> list[Unit]:
    with (DATA / "phu-yen-2021-units.csv").open(encoding="utf-8", newline="") as f:
        return [
            Unit.model_validate({k: v or None for k, v in row.items()}) for row in csv.DictReader(f)
        ]


def load_plan() -> Plan:
    return Plan.model_validate(json.loads((DATA / "plan-PY-2021-460.json").read_text("utf-8")))


NATIONAL_PLAN_ID = "VN-2021-460"


def national_plan() -> Plan:
    """The default plan's targets and calendar, issued by the central union (`VN`): a plan
    that covers the whole synthetic country (`country`)."""
    return load_plan().model_copy(update={"plan_id": NATIONAL_PLAN_ID, "issuing_unit_id": "VN"})


@dataclass
class Generated:
    units: list[Unit]
    plan: Plan
    events: list[Envelope] = field(default_factory=list)


# --- the generator ----------------------------------------------------------------------------


def country(provinces: int = 63, districts: int = 700, communes: int = 10_600) -> list[Unit]:
    """A synthetic national tree of the 2021 shape: the central union, 63 provinces, 700
    districts, 10,600 communes (the sizes can be made smaller)."""
    units = [
        Unit(
            unit_id="VN",
            name="Trung ương Hội LHPN Việt Nam",
            kind="trung ương",
            level=UnitLevel.national,
        )
    ]
    units += [
        Unit(
            unit_id=f"P{p:02d}",
            name=f"Tỉnh số {p}",
            kind="tỉnh",
            level=UnitLevel.province,
            parent_id="VN",
        )
        for p in range(provinces)
    ]
    units += [
        Unit(
            unit_id=f"D{d:03d}",
            name=f"Huyện số {d}",
            kind="huyện",
            level=UnitLevel.district,
            parent_id=f"P{d % provinces:02d}",
        )
        for d in range(districts)
    ]
    units += [
        Unit(
            unit_id=f"C{c:05d}",
            name=f"Xã số {c}",
            kind="xã",
            level=UnitLevel.commune,
            parent_id=f"D{c % districts:03d}",
        )
        for c in range(communes)
    ]
    return units


def setup_events(generated: Generated) -> list[Envelope]:
    """`unit.upserted` for every unit and `plan.published` for the plan."""
    at = datetime(generated.plan.year, 1, 1, tzinfo=VN)
    out = [
        make_event("unit.upserted", u, source="test", occurred_at=at, unit_id=u.unit_id)
        for u in generated.units
    ]
    out.append(
        make_event(
            "plan.published",
            generated.plan,
            source="test",
            occurred_at=at,
            unit_id=generated.plan.issuing_unit_id,
        )
    )
    return out


def stream(generated: Generated) -> list[Envelope]:
    """The units, the plan, then the generated events: everything the service consumes."""
    return setup_events(generated) + generated.events


def generate(seed: int, *, activities: int = 3000, cases: int = 400) -> Generated:
    rng = random.Random(seed)
    out = Generated(units=load_units(), plan=load_plan())
    _activities(rng, out, activities)
    _reports(rng, out)
    _cases(rng, out, cases)
    return out


def _event(kind: str, data: Any, at: datetime, rng: random.Random) -> Envelope:
    return make_event(
        kind,
        data,
        source="generator",
        occurred_at=at,
        unit_id=getattr(data, "unit_id", None),
        event_id=uuid.UUID(int=rng.getrandbits(128)),
    )


def _a_day(rng: random.Random, year: int) -> date:
    roll = rng.random()
    if roll < 0.12:  # the edges of the year and of its halves
        return rng.choice(
            [date(year, 1, 1), date(year, 6, 30), date(year, 7, 1), date(year, 12, 31)]
        )
    if roll < 0.2:  # just outside the year
        return rng.choice(
            [
                date(year - 1, 12, 31) - timedelta(days=rng.randrange(20)),
                date(year + 1, 1, 1) + timedelta(days=rng.randrange(20)),
            ]
        )
    if roll < 0.27:  # around the days the tests ask "as of"
        return rng.choice([date(year, 5, 19), date(year, 5, 20), date(year, 5, 21)])
    return date(year, 1, 1) + timedelta(days=rng.randrange(365))


def _metrics(rng: random.Random, kind: ActivityKind) -> dict[str, int]:
    values = {name: rng.randint(0, 20) for name in METRICS[kind]}
    for part, whole in (
        ("recommendations_accepted", "recommendations"),
        ("comments_accepted", "comments"),
        ("issues_answered", "issues_raised"),
        ("female_participants", "participants"),
    ):
        if part in values:
            values[part] = rng.randint(0, values[whole])
    return values


def _activities(rng: random.Random, out: Generated, n: int) -> None:
    units = out.units
    # some units are busy, some nearly idle, so that compliance is neither 0% nor 100%
    weights = [rng.choice([0.05, 1, 1, 2, 3]) for _ in units]
    kinds = list(ActivityKind)
    year = out.plan.year
    for _ in range(n):
        activity_id = uuid.UUID(int=rng.getrandbits(128))
        recorded_at = datetime(year, 1, 1, tzinfo=VN) + timedelta(minutes=rng.randrange(525_600))
        revision = 1
        voided = False
        unit = rng.choices(units, weights)[0]
        kind = rng.choice(kinds)
        activity = Activity(
            activity_id=activity_id,
            unit_id=unit.unit_id,
            kind=kind,
            occurred_on=_a_day(rng, year),
            title=f"Hoạt động {kind.value}",
            metrics=_metrics(rng, kind),
            revision=revision,
            recorded_at=recorded_at,
        )
        out.events.append(_event("activity.recorded", activity, recorded_at, rng))
        for _step in range(rng.choice([0, 0, 0, 1, 1, 2, 3])):
            revision += 1
            recorded_at += timedelta(hours=rng.randint(1, 200))
            if not voided and rng.random() < 0.3:
                voided = True
                void = ActivityVoided(
                    activity_id=activity_id,
                    unit_id=activity.unit_id,
                    revision=revision,
                    voided_at=recorded_at,
                    reason="nhập trùng",
                )
                out.events.append(_event("activity.voided", void, recorded_at, rng))
                continue
            voided = False  # a correction after a void restores the activity
            changes: dict[str, Any] = {"revision": revision, "recorded_at": recorded_at}
            what = rng.choice(["kind", "day", "unit", "metrics"])
            if what == "kind":
                changes["kind"] = rng.choice(kinds)
                changes["metrics"] = _metrics(rng, changes["kind"])
            elif what == "day":
                changes["occurred_on"] = _a_day(rng, year)
            elif what == "unit":
                changes["unit_id"] = rng.choice(units).unit_id
            else:
                changes["metrics"] = _metrics(rng, activity.kind)
            activity = activity.model_copy(update=changes)
            out.events.append(_event("activity.recorded", activity, recorded_at, rng))


def _reports(rng: random.Random, out: Generated) -> None:
    for schedule in out.plan.report_schedules:
        codes = sorted(set(schedule.indicators))
        for period in schedule.periods:
            for unit in out.units:
                if unit.level not in schedule.levels or rng.random() < 0.15:
                    continue
                due_at = period.due_at[unit.level]
                received_at = due_at + timedelta(minutes=rng.randint(-12 * 1440, 6 * 1440))
                report = Report(
                    report_id=uuid.UUID(int=rng.getrandbits(128)),
                    unit_id=unit.unit_id,
                    report_type=schedule.report_type,
                    period=period.period,
                    indicators={c: rng.randint(0, 30) for c in codes if rng.random() < 0.6},
                    received_at=received_at,
                    due_at=due_at,
                    on_time=received_at < due_at,
                )
                out.events.append(_event("report.submitted", report, received_at, rng))
                for revision in range(2, 2 + rng.choice([0, 0, 1, 1, 2])):
                    sent_at = report.received_at + timedelta(minutes=rng.randint(60, 5 * 1440))
                    # per SPEC §5 the producer keeps the first received_at; other systems may not
                    own_time = rng.random() < 0.5
                    report = report.model_copy(
                        update={
                            "revision": revision,
                            "indicators": {
                                c: rng.randint(0, 30) for c in codes if rng.random() < 0.6
                            },
                            "received_at": sent_at if own_time else report.received_at,
                            "on_time": sent_at < due_at if own_time else report.on_time,
                        }
                    )
                    out.events.append(_event("report.submitted", report, sent_at, rng))


_PATHS = [
    ["accepted", "in_progress", "resolved", "closed"],
    ["declined", "closed"],
    ["accepted", "in_progress", "mediation_succeeded", "closed"],
    ["accepted", "in_progress", "mediation_failed", "closed"],
    ["accepted", "in_progress", "referred", "closed"],
    ["accepted", "withdrawn", "closed"],
    ["accepted", "in_progress", "resolved", "closed", "in_progress", "resolved", "closed"],
]


def _due(start: date, days: int) -> datetime:
    """SPEC §6 deadlines: `days` after `start`, late from 00:00 of the day after the last one."""
    return datetime.combine(start + timedelta(days=days + 1), time(0), tzinfo=VN)


def _cases(rng: random.Random, out: Generated, n: int) -> None:
    year = out.plan.year
    for _ in range(n):
        received_on = _a_day(rng, year)
        at = datetime.combine(received_on, time(8), tzinfo=VN)
        facts = CaseFacts(
            case_id=uuid.UUID(int=rng.getrandbits(128)),
            unit_id=rng.choice(out.units).unit_id,
            kind=rng.choice(list(CaseKind)),
            topic=rng.choice(list(CaseTopic)),
            channel=rng.choice(list(CaseChannel)),
            status=CaseStatus.received,
            received_on=received_on,
            flags=rng.sample(FLAGS, rng.randint(0, 2)),
            overdue=rng.random() < 0.1,
            next_due_at=_due(received_on, 10),  # SPEC §6: accept within 10 days of receipt
        )
        out.events.append(_event("case.opened", facts, at, rng))
        path = rng.choice(_PATHS)
        for step, status in enumerate(path[: rng.randint(0, len(path))], start=2):
            at += timedelta(days=rng.randint(1, 20))
            change = CaseStatusChange(
                **facts.model_dump(
                    exclude={
                        "status",
                        "revision",
                        "overdue",
                        "topic",
                        "from_status",
                        "changed_at",
                        "next_due_at",
                    }
                ),
                topic=rng.choice(list(CaseTopic)) if rng.random() < 0.1 else facts.topic,
                status=CaseStatus(status),
                revision=step,
                overdue=status != "closed" and rng.random() < 0.15,
                next_due_at=_due(at.date(), 30) if status in ("accepted", "in_progress") else None,
                from_status=facts.status,
                changed_at=at,
            )
            kind = "case.closed" if status == "closed" else "case.status_changed"
            out.events.append(_event(kind, change, at, rng))
            facts = change


# --- the reference computation ----------------------------------------------------------------


def _subtree(units: list[Unit], root_id: str) -> list[Unit]:
    """The root and every unit whose chain of parents reaches it."""
    parent = {u.unit_id: u.parent_id for u in units}

    def reaches(unit_id: str | None) -> bool:
        while unit_id is not None:
            if unit_id == root_id:
                return True
            unit_id = parent.get(unit_id)
        return False

    return [u for u in units if reaches(u.unit_id)]


def _bounds(key: str) -> tuple[date, date]:
    year = int(key[:4])
    rest = key[5:]
    if not rest:
        first, last = 1, 12
    elif rest.startswith("H"):
        first = 1 if rest == "H1" else 7
        last = first + 5
    elif rest.startswith("Q"):
        first = 3 * int(rest[1]) - 2
        last = first + 2
    else:
        first = last = int(rest)
    return date(year, first, 1), date(year, last, calendar.monthrange(year, last)[1])


Raw = list[tuple[str, Any]]
"""Events as (type, parsed data), in the order they were delivered."""


def raw(events: Iterable[Envelope]) -> Raw:
    return [(e.type, parse_data(e)) for e in events]


def latest_activities(events: Raw) -> list[Activity]:
    """The activities alive after all events: per activity the highest revision (a void wins
    a tie), unless that is a void."""
    best: dict[uuid.UUID, tuple[int, bool, Activity | None]] = {}
    for kind, data in events:
        if kind == "activity.recorded":
            a: Activity = data
            activity_id, candidate = a.activity_id, (a.revision, a.voided, None if a.voided else a)
        elif kind == "activity.voided":
            activity_id, candidate = data.activity_id, (data.revision, True, None)
        else:
            continue
        if activity_id not in best or candidate[:2] > best[activity_id][:2]:
            best[activity_id] = candidate
    return [a for _, _, a in best.values() if a is not None]


def latest_reports(
    events: Raw,
) -> dict[tuple[str, str, str], tuple[Report, datetime, bool]]:
    """Per (unit, type, period): the highest revision, and the earliest received_at with the
    on_time computed for it."""
    out: dict[tuple[str, str, str], tuple[Report, datetime, bool]] = {}
    for kind, r in events:
        if kind != "report.submitted":
            continue
        key = (r.unit_id, r.report_type, r.period)
        if key not in out:
            out[key] = (r, r.received_at, r.on_time)
            continue
        latest, first_at, first_on_time = out[key]
        if r.revision > latest.revision:
            latest = r
        if (r.received_at, r.on_time) < (first_at, first_on_time):
            first_at, first_on_time = r.received_at, r.on_time
        out[key] = (latest, first_at, first_on_time)
    return out


@dataclass
class Figures:
    """in_scope/expected, met/received, the ids of the units not meeting or missing, per child."""

    total: int = 0
    good: int = 0
    on_time: int = 0
    bad: list[str] = field(default_factory=list)
    late: list[str] = field(default_factory=list)
    children: dict[str, Figures] = field(default_factory=dict)


def _child_of(units: list[Unit], root_id: str) -> dict[str, str]:
    children = [u.unit_id for u in units if u.parent_id == root_id]
    return {u.unit_id: child for child in children for u in _subtree(units, child)}


def reference_compliance(
    units: list[Unit], plan: Plan, root_id: str, as_of: datetime, events: Raw
) -> dict[str, Figures]:
    alive: dict[str, list[Activity]] = {}
    for a in latest_activities(events):
        alive.setdefault(a.unit_id, []).append(a)
    today = as_of.astimezone(VN).date()
    start, end = date(plan.year, 1, 1), date(plan.year, 12, 31)
    halves = [
        (date(plan.year, 1, 1), date(plan.year, 6, 30)),
        (date(plan.year, 7, 1), date(plan.year, 12, 31)),
    ]
    ended = [(a, b) for a, b in halves if today > b]
    scope_day = min(max(today, start), end)  # the units that exist that day are in scope
    child_of = _child_of(units, root_id)
    out: dict[str, Figures] = {}
    for target in plan.targets:
        figures = Figures(children={c: Figures() for c in set(child_of.values())})
        for unit in _subtree(units, root_id):
            valid = (unit.valid_from is None or unit.valid_from <= scope_day) and (
                unit.valid_to is None or unit.valid_to >= scope_day
            )
            if unit.level not in target.levels or not valid:
                continue
            mine = [
                a.occurred_on
                for a in alive.get(unit.unit_id, [])
                if a.kind in target.activity_kinds
            ]
            if target.rule == "any_in_year":
                met = sum(start <= day <= min(end, today) for day in mine) >= target.min_count
            else:
                met = bool(ended) and all(
                    sum(a <= day <= b for day in mine) >= target.min_count for a, b in ended
                )
            for f in [figures] + (
                [figures.children[child_of[unit.unit_id]]] if unit.unit_id in child_of else []
            ):
                f.total += 1
                f.good += met
                if not met:
                    f.bad.append(unit.unit_id)
        out[target.code] = figures
    return out


def _valid_on(unit: Unit, day: date) -> bool:
    return (unit.valid_from is None or unit.valid_from <= day) and (
        unit.valid_to is None or day <= unit.valid_to
    )


def reference_rates(
    units: list[Unit],
    plan: Plan,
    root_id: str,
    report_type: str,
    period: str,
    events: Raw,
) -> Figures:
    schedule = next(s for s in plan.report_schedules if s.report_type == report_type)
    p = next(p for p in schedule.periods if p.period == period)
    reports = latest_reports(events)
    child_of = _child_of(units, root_id)
    figures = Figures(children={c: Figures() for c in set(child_of.values())})
    for unit in _subtree(units, root_id):
        if unit.level not in schedule.levels:
            continue
        # issue 10: owed by the units that exist on the report date (the last day to send it on
        # time); a report received from a unit valid during the data window stays its own
        last_day = (p.due_at[unit.level].astimezone(VN) - timedelta(microseconds=1)).date()
        window_end = p.window_end_on or last_day  # "… – report date"
        expected = _valid_on(unit, last_day)
        found = reports.get((unit.unit_id, report_type, period))
        in_window = (unit.valid_from is None or unit.valid_from <= window_end) and (
            unit.valid_to is None or unit.valid_to >= p.window_start_on
        )
        if not expected and (found is None or not in_window):
            continue
        for f in [figures] + (
            [figures.children[child_of[unit.unit_id]]] if unit.unit_id in child_of else []
        ):
            f.total += 1
            if found is None:
                f.bad.append(unit.unit_id)
                continue
            f.good += 1
            if found[2]:
                f.on_time += 1
            else:
                f.late.append(unit.unit_id)
    return figures


@dataclass
class IndicatorReference:
    recorded: dict[str, int]
    """by indicator code"""
    declared: dict[str, int]
    """by indicator code, summed over the latest revision of each report of the period"""
    reports: int
    activities: dict[str, int]
    """by activity kind"""


def reference_indicators(
    units: list[Unit], root_id: str, period: str, events: Raw
) -> IndicatorReference:
    inside = {u.unit_id for u in _subtree(units, root_id)}
    first, last = _bounds(period)
    recorded: Counter[str] = Counter()
    activities: Counter[str] = Counter()
    for a in latest_activities(events):
        if a.unit_id in inside and first <= a.occurred_on <= last:
            activities[a.kind.value] += 1
            if "count" not in METRICS[a.kind]:  # exemplar.count is its metric
                recorded[f"{a.kind.value}.count"] += 1
            for name, value in a.metrics.items():
                recorded[f"{a.kind.value}.{name}"] += value
    declared: Counter[str] = Counter()
    summed = 0
    for (unit_id, _type, key), (report, _, _) in latest_reports(events).items():
        # issue 10: the monthly reports of the months within the period add up
        is_month = len(key) == 7 and key[4] == "-" and key[5:].isdigit()
        if unit_id in inside and is_month and first <= _bounds(key)[0] <= last:
            summed += 1
            declared.update(report.indicators)
    return IndicatorReference(dict(recorded), dict(declared), summed, dict(activities))


def reference_case_stats(
    units: list[Unit], root_id: str, period: str, events: Raw, now: datetime
) -> dict[str, Any]:
    """Overdue: flagged by the case's last event, or open with a deadline passed at `now`."""
    inside = {u.unit_id for u in _subtree(units, root_id)}
    first, last = _bounds(period)
    latest: dict[str, CaseFacts] = {}
    for kind, c in events:
        if not kind.startswith("case."):
            continue
        if str(c.case_id) not in latest or c.revision > latest[str(c.case_id)].revision:
            latest[str(c.case_id)] = c
    counts: dict[str, Any] = {
        "received": 0,
        "overdue": 0,
        "by_kind": Counter(),
        "by_topic": Counter(),
        "by_status": Counter(),
        "by_outcome": Counter(),
        "by_flag": Counter(),
    }
    for c in latest.values():
        if c.unit_id not in inside or not first <= c.received_on <= last:
            continue
        counts["received"] += 1
        still_open = c.status.value not in OUTCOMES and c.status != "closed"
        passed = c.next_due_at is not None and c.next_due_at <= now
        counts["overdue"] += c.overdue or (still_open and passed)
        counts["by_kind"][c.kind.value] += 1
        counts["by_topic"][c.topic.value] += 1
        counts["by_status"][c.status.value] += 1
        counts["by_flag"].update(set(c.flags))
        outcome = c.status.value if c.status.value in OUTCOMES else None
        if c.status == "closed" and isinstance(c, CaseStatusChange) and c.from_status in OUTCOMES:
            outcome = c.from_status.value
        if outcome:
            counts["by_outcome"][outcome] += 1
    return counts

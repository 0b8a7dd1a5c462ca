"""The figures the platform must answer after the stream, counted again here from the stream
alone, in plain Python — no code of the services.

- aggregation: the reference computations of `tests/unit/aggregation/generated.py` (walk the
  final activities, reports and cases, filter, count) over what the stream means
  (`stream.Expected`); a case's `overdue` flag and its `next_due_at` are the only facts taken
  from the cases service (they follow from its deadline rules and the clock);
- reminders: which reminders are due by the sweeps' instants (SPEC §7's default policy: the unit
  3 days before the due instant and on its last day, then on days +1 and +3, its parent one digest
  on day +5; a case deadline: warning 2 days before, overdue on the day, escalation to the parent
  3 days after), for every report the plan expects and the stream did not send, and every
  deadline the cases service lists for the cases still open.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from lhpn_shared.contracts.activities import Activity
from lhpn_shared.contracts.cases import CaseStatus, CaseStatusChange
from lhpn_shared.contracts.events import ActivityVoided
from lhpn_shared.contracts.units import Unit
from tests.faults.stream import Stream
from tests.integration.aggregation.streams import AS_OF, PERIODS
from tests.unit.aggregation.generated import (
    Raw,
    reference_case_stats,
    reference_compliance,
    reference_indicators,
    reference_rates,
)

UNIT_STEPS = (("before_3d", -3), ("due_day", -1), ("after_1d", 1), ("after_3d", 3))
DIGEST = ("parent_digest", 5)
CASE_STEPS = (("warning", -2, False), ("overdue", 0, False), ("escalation", 3, True))


CaseClock = dict[str, tuple[bool, datetime | None]]
"""per case, from the cases service: (overdue, next_due_at)"""


def final_events(stream: Stream, clock: CaseClock) -> Raw:
    """One event per entity: its final state as the stream left it."""
    raw: Raw = []
    for final in stream.expected.activities.values():
        kind = "activity.voided" if isinstance(final, ActivityVoided) else "activity.recorded"
        assert isinstance(final, Activity | ActivityVoided)
        raw.append((kind, final))
    for report in stream.expected.reports.values():
        raw.append(("report.submitted", report))
    for case_id, (facts, path) in stream.expected.cases.items():
        statuses = ["received", *path]
        change = CaseStatusChange(
            **facts.model_dump(exclude={"status", "revision", "overdue", "next_due_at"}),
            status=CaseStatus(statuses[-1]),
            revision=len(statuses),
            overdue=clock.get(case_id, (False, None))[0],
            next_due_at=clock.get(case_id, (False, None))[1],
            from_status=CaseStatus(statuses[-2]) if len(statuses) > 1 else None,
            changed_at=datetime(2021, 12, 31).astimezone(),
        )
        raw.append(("case.status_changed" if path else "case.opened", change))
    return raw


def roots(units: list[Unit]) -> list[str]:
    return [u.unit_id for u in units if u.level.value in ("province", "district")]


def compare_aggregation(
    stream: Stream, answers: dict[str, Any], clock: CaseClock, now: datetime
) -> tuple[list[str], Counter[str]]:
    """Every difference between aggregation's answers and the recount, and how many figures
    were compared; `now`: when aggregation answered (a case still open is overdue once its next
    deadline has passed)."""
    units, plan = stream.units, stream.plan
    events = final_events(stream, clock)
    wrong: list[str] = []
    checked: Counter[str] = Counter()

    def same(what: str, got: Any, want: Any) -> None:
        checked[what.split(" ", 1)[0]] += 1
        if got != want:
            wrong.append(f"{what}: aggregation {got!r}, recount {want!r}")

    for root in roots(units):
        for as_of in AS_OF:
            result = answers[f"compliance {root} {as_of}"]
            reference = reference_compliance(units, plan, root, as_of, events)
            for target in result["targets"]:
                want = reference[target["code"]]
                same(
                    f"compliance {root} {target['code']} {as_of:%Y-%m-%d}",
                    (target["in_scope"], target["met"], [u["unit_id"] for u in target["not_met"]]),
                    (want.total, want.good, want.bad),
                )
        for schedule in plan.report_schedules:
            for p in schedule.periods:
                result = answers[f"rates {root} {schedule.report_type} {p.period}"]
                rates = reference_rates(units, plan, root, schedule.report_type, p.period, events)
                same(
                    f"rates {root} {schedule.report_type} {p.period}",
                    (
                        result["expected"],
                        result["received"],
                        result["on_time"],
                        [u["unit_id"] for u in result["missing"]],
                    ),
                    (rates.total, rates.good, rates.on_time, rates.bad),
                )
        for period in PERIODS:
            result = answers[f"indicators {root} {period}"]
            totals = reference_indicators(units, root, period, events)
            same(f"indicators {root} {period} reports", result["reports"], totals.reports)
            for row in result["rows"]:
                same(
                    f"indicators {root} {period} {row['code']}",
                    (row["recorded"], row["declared"]),
                    (totals.recorded.get(row["code"], 0), totals.declared.get(row["code"])),
                )
            stats = answers[f"cases {root} {period}"]
            want = reference_case_stats(units, root, period, events, now)
            for name in ("received", "overdue"):
                same(f"cases {root} {period} {name}", stats[name], want[name])
            for name in ("by_kind", "by_topic", "by_status", "by_outcome", "by_flag"):
                same(
                    f"cases {root} {period} {name}",
                    {k: n for k, n in stats[name].items() if n},
                    dict(want[name]),
                )
    return wrong, checked


# ---- reminders ---------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Reminder:
    """What a reminder is about, as its webhook payload says it."""

    kind: str
    step: str
    recipient: str
    about: tuple[str, ...]
    """report reminder: (type, period); digest: (type, period, late units…);
    case: (case_id, deadline)"""


def of_payload(payload: dict[str, Any]) -> Reminder:
    m = payload["message"]
    if m["kind"] == "report_reminder":
        about: tuple[str, ...] = (m["report_type"], m["period"])
    elif m["kind"] == "parent_digest":
        about = (m["report_type"], m["period"], *m["late_unit_ids"])
    else:
        about = (str(m["case_id"]), m["deadline"])
    return Reminder(m["kind"], m["step"], m["recipient_unit_id"], about)


Deadlines = dict[str, tuple[str, list[tuple[str, datetime]]]]
"""per open case: its unit, and its deadlines (name, due instant)"""


def due_reminders(stream: Stream, as_of: datetime, open_deadlines: Deadlines) -> set[Reminder]:
    """Every reminder due by `as_of` once the whole stream is in.

    `open_deadlines`: per case still open, its unit and its deadlines (name, due instant) as
    the cases service lists them."""
    units = {u.unit_id: u for u in stream.units}
    out: set[Reminder] = set()
    late: dict[tuple[str, str, str], list[str]] = {}
    for schedule in stream.plan.report_schedules:
        for period in schedule.periods:
            for unit in sorted(units.values(), key=lambda u: u.unit_id):
                if unit.level not in schedule.levels:
                    continue
                if (unit.unit_id, schedule.report_type, period.period) in stream.expected.reports:
                    continue  # sent: nothing to remind about
                due_at = period.due_at[unit.level]
                for step, days in UNIT_STEPS:
                    if due_at + timedelta(days=days) <= as_of:
                        out.add(
                            Reminder(
                                "report_reminder",
                                step,
                                unit.unit_id,
                                (schedule.report_type, period.period),
                            )
                        )
                if unit.parent_id in units and due_at + timedelta(days=DIGEST[1]) <= as_of:
                    key = (schedule.report_type, period.period, unit.parent_id)
                    late.setdefault(key, []).append(unit.unit_id)
    for (report_type, period_key, parent), children in late.items():
        out.add(Reminder("parent_digest", DIGEST[0], parent, (report_type, period_key, *children)))
    for case_id, (unit_id, deadlines) in open_deadlines.items():
        for name, due_at in deadlines:
            for step, days, to_parent in CASE_STEPS:
                if due_at + timedelta(days=days) > as_of:
                    continue
                recipient = units[unit_id].parent_id if to_parent else unit_id
                if recipient is None or recipient not in units:
                    continue
                out.add(Reminder("case_deadline", step, recipient, (case_id, name)))
    return out


def due_over(
    stream: Stream, instants: Iterable[datetime], open_deadlines: Deadlines
) -> set[Reminder]:
    """Due by any of the sweeps' instants (a step is sent once, by the first sweep due)."""
    return set().union(*(due_reminders(stream, t, open_deadlines) for t in instants))

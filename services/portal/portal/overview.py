"""What the dashboard asks for, decided from the plan and the time (pure: `now` is passed in).

- the plan: the latest published one (highest year);
- the as-of instant of its compliance: now, or the end of the plan year when that has passed;
- the latest reporting periods: per schedule the last period whose due instant has passed
  (the last three of the schedule with the most periods, the monthly one by default), or the
  first period when none has passed yet; only schedules some unit of the subtree reports to.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from lhpn_shared.clock import LOCAL_TZ

LEVEL_ORDER = ["national", "province", "district", "commune"]


@dataclass(frozen=True)
class LatestPeriod:
    report_type: str
    title: str
    period: str
    due_at: datetime


def latest_plan(plans: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not plans:
        return None
    return max(plans, key=lambda p: (int(p.get("year", 0)), str(p.get("plan_id", ""))))


def plan_as_of(plan: dict[str, Any], now: datetime) -> datetime:
    """Now, or the last instant of the plan year (local time) when the year is over."""
    year_end = datetime.combine(date(int(plan["year"]), 12, 31), time(23, 59, 59), tzinfo=LOCAL_TZ)
    return min(now.astimezone(LOCAL_TZ), year_end)


def levels_at_or_below(level: str | None) -> set[str]:
    if level not in LEVEL_ORDER:
        return set(LEVEL_ORDER)
    return set(LEVEL_ORDER[LEVEL_ORDER.index(level) :])


def _due(period: dict[str, Any]) -> datetime:
    return max(datetime.fromisoformat(d) for d in period["due_at"].values())


def latest_periods(
    plan: dict[str, Any], now: datetime, root_level: str | None, monthly_count: int = 3
) -> list[LatestPeriod]:
    schedules = [
        s
        for s in plan.get("report_schedules", [])
        if set(s.get("levels", [])) & levels_at_or_below(root_level) and s.get("periods")
    ]
    if not schedules:
        return []
    busiest = max(schedules, key=lambda s: len(s["periods"]))
    out: list[LatestPeriod] = []
    for schedule in schedules:
        periods = sorted(schedule["periods"], key=_due)
        due = [p for p in periods if _due(p) <= now]
        count = monthly_count if schedule is busiest else 1
        chosen = list(reversed(due[-count:])) if due else periods[:1]
        out.extend(
            LatestPeriod(schedule["report_type"], schedule["title"], p["period"], _due(p))
            for p in chosen
        )
    return sorted(out, key=lambda p: (-p.due_at.timestamp(), p.report_type))


def breadcrumbs(units: dict[str, dict[str, Any]], unit_id: str, top: str | None) -> list[str]:
    """The unit ids from `top` (the user's unit, or the tree's root) down to `unit_id`."""
    path = [unit_id]
    seen = {unit_id}
    while path[-1] != top:
        parent = units.get(path[-1], {}).get("parent_id")
        if parent is None or parent in seen:
            break
        path.append(parent)
        seen.add(parent)
    return list(reversed(path))


def overdue_first(obligations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Overdue first (oldest due first), then open (nearest due first), then the fulfilled
    ones (latest due first)."""

    def due(item: dict[str, Any]) -> str:
        return str(item.get("due_at", ""))

    overdue = sorted((o for o in obligations if o.get("status") == "overdue"), key=due)
    open_ = sorted((o for o in obligations if o.get("status") == "open"), key=due)
    done = sorted(
        (o for o in obligations if o.get("status") not in ("overdue", "open")),
        key=due,
        reverse=True,
    )
    return overdue + open_ + done


def cases_overdue_first(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Overdue first, then by the next due instant; cases without one last."""
    return sorted(
        cases,
        key=lambda c: (
            0 if c.get("overdue") else 1,
            c.get("next_due_at") is None,
            str(c.get("next_due_at") or ""),
        ),
    )

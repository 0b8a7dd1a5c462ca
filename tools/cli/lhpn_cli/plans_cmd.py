"""`lhpn plans import`: publish plans (targets and report calendar) through intake's API, which
announces each new or changed one as `plan.published` to every service."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from pydantic import TypeAdapter, ValidationError

from lhpn_shared.contracts.plans import Plan

from .common import (
    DEV_PASSWORD,
    Failed,
    IntakeUrl,
    Password,
    Username,
    admin_client,
    check,
    console,
    default_url,
    progress,
    run,
)

plans_app = typer.Typer(
    help="The year's plans: their targets and reporting calendar.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

PLANS: TypeAdapter[Plan | list[Plan]] = TypeAdapter(Plan | list[Plan])


def read_plans(path: Path) -> list[Plan]:
    """One plan or a list of plans (JSON, the shape of `GET /api/v1/plans/{plan_id}`); a
    problem names the file and the field."""
    try:
        parsed = PLANS.validate_json(path.read_bytes())
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(file)'}: {e['msg']}"
            for e in exc.errors()[:10]
        )
        raise Failed(f"{path}: không phải kế hoạch hợp lệ — {problems}") from exc
    return parsed if isinstance(parsed, list) else [parsed]


async def publish(client: httpx.AsyncClient, plan: Plan) -> tuple[str, dict[str, Any]]:
    """('published' | 'unchanged', the plan as intake stored it)."""
    body = json.loads(plan.model_dump_json(exclude={"revision", "published_at"}))
    r = await client.post("/api/v1/plans", json=body)
    stored = check(r)
    return ("published" if r.status_code == 201 else "unchanged"), stored


@plans_app.command("import")
def import_plans(
    files: Annotated[
        list[Path],
        typer.Argument(
            exists=True,
            dir_okay=False,
            help="JSON files, each one plan or a list of plans (plan_id, year, number, "
            "issuing_unit_id, title, targets, report_schedules).",
        ),
    ],
    url: IntakeUrl = "",
    username: Username = "admin",
    password: Password = DEV_PASSWORD,
) -> None:
    """Publish plans. A plan that is already there with the same content is left as it is; one
    whose content changed gets a new revision, and every service recomputes from it."""
    plans = [plan for f in files for plan in read_plans(f)]  # every file checked before any send

    async def work() -> dict[str, int]:
        counts = {"published": 0, "unchanged": 0}
        async with admin_client(url or default_url("intake"), username, password) as client:
            with progress() as bars:
                task = bars.add_task("Kế hoạch", total=len(plans))
                for plan in plans:
                    outcome, stored = await publish(client, plan)
                    counts[outcome] += 1
                    console.print(
                        f"{stored['plan_id']} ({stored['number']}): "
                        + ("đã ban hành" if outcome == "published" else "không thay đổi")
                        + f", lần {stored['revision']}"
                    )
                    bars.advance(task)
        return counts

    counts = run(work)
    console.print(f"Đã ban hành: {counts['published']}, không thay đổi: {counts['unchanged']}.")

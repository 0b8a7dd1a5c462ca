"""`lhpn reminders sweep`: one reminder sweep, as of now or of a given instant, through
reminders' API (`POST /api/v1/sweeps`, admins only)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Annotated, Any

import typer

from .common import (
    DEV_PASSWORD,
    IntakeUrl,
    Password,
    RemindersUrl,
    Username,
    admin_client,
    check,
    console,
    default_url,
    progress,
    run,
)

reminders_app = typer.Typer(
    help="Reminders: run a sweep (the scheduler also runs them on its own).",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


def parse_instant(value: str) -> datetime:
    try:
        instant = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"not an ISO 8601 instant: {value!r}") from exc
    if instant.tzinfo is None:
        raise typer.BadParameter("give the time zone, e.g. 2021-11-04T08:00:00+07:00")
    return instant


@reminders_app.command("sweep")
def sweep(
    as_of: Annotated[
        str | None,
        typer.Option(
            help="The instant to sweep as of, with its time zone (e.g. 2021-11-04T08:00:00+07:00)."
            " Default: now. Every step due by then and not sent yet is sent; a second sweep at "
            "the same instant sends nothing new.",
        ),
    ] = None,
    reminders_url: RemindersUrl = "",
    url: IntakeUrl = "",
    username: Username = "admin",
    password: Password = DEV_PASSWORD,
) -> None:
    """Send every reminder, escalation and case-deadline warning whose time has come."""
    instant = parse_instant(as_of) if as_of else None

    async def work() -> dict[str, Any]:
        base = reminders_url or default_url("reminders")
        async with admin_client(
            url or default_url("intake"), username, password, base_url=base
        ) as client:
            with progress(counted=False) as bars:
                bars.add_task(f"Quét nhắc việc ({base})", total=None)
                body = {"as_of": instant.isoformat()} if instant else {}
                answer: dict[str, Any] = check(await client.post("/api/v1/sweeps", json=body))
        return answer

    result = run(work)
    statuses = Counter(n["status"] for n in result["notifications"])
    console.print(
        f"Quét lúc {result['as_of']}: {result['obligations_examined']} nghĩa vụ báo cáo và "
        f"{result['cases_examined']} vụ việc được xem xét; {result['planned']} thông báo đến "
        f"hạn, {len(result['notifications'])} thông báo được gửi lần này "
        f"(thành công {statuses.get('sent', 0)}, thất bại {statuses.get('failed', 0)}, "
        f"chờ gửi lại {statuses.get('retrying', 0)}); {result['already_claimed']} đã gửi từ "
        f"trước; {result['newly_overdue']} báo cáo mới quá hạn."
    )

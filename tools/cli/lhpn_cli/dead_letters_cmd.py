"""`lhpn dead-letters`: each service's dead-letter queues — list them with counts and reasons,
show a message, replay messages to the queue they came from, purge — through the services' own
admin routes (`/api/v1/dead-letters`, `lhpn_shared.dead_letters`), signed in as an admin like
every other command. A queue's name says its service (`cases.inbound` → cases)."""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated, Any

import typer

from .common import (
    DEV_PASSWORD,
    IntakeUrl,
    Password,
    Username,
    admin_client,
    check,
    console,
    default_url,
    run,
)

SERVICES = ("intake", "cases", "reminders", "aggregation")

dead_letters_app = typer.Typer(
    help="Dead letters: list each queue's with counts and reasons, show one, replay, purge.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

Reason = Annotated[
    str | None,
    typer.Option(help="Only the dead letters whose reason contains this text."),
]
MessageIds = Annotated[
    list[str] | None,
    typer.Option("--message-id", help="Only this message (repeat for several)."),
]
Everything = Annotated[
    bool, typer.Option("--all", help="Every dead letter of the queue (no --reason/--message-id).")
]


def service_url(service: str) -> str:
    """LHPN_<SERVICE>_URL, else http://127.0.0.1:$<SERVICE>_PORT."""
    return os.environ.get(f"LHPN_{service.upper()}_URL") or default_url(service)


def service_of(queue: str) -> str:
    service = queue.split(".", 1)[0]
    if service not in SERVICES or "." not in queue:
        raise typer.BadParameter(
            f"'{queue}' không phải hàng đợi của dịch vụ nào (vd. intake.inbound, cases.inbound, "
            "cases.events, reminders.events, aggregation.events)"
        )
    return service


def _selection(queue: str, reason: str | None, ids: list[str] | None, everything: bool) -> Any:
    if not everything and not reason and not ids:
        raise typer.BadParameter("chọn thư nào: --reason, --message-id, hoặc --all cho tất cả")
    if everything and (reason or ids):
        raise typer.BadParameter("--all không đi cùng --reason/--message-id")
    return {"queue": queue, "reason": reason or None, "message_ids": ids or None}


async def _call(
    service: str, url: str, username: str, password: str, method: str, path: str, **kw: Any
) -> Any:
    async with admin_client(
        url or default_url("intake"), username, password, base_url=service_url(service)
    ) as client:
        return check(await client.request(method, path, **kw))


@dead_letters_app.command("list")
def list_(
    service: Annotated[
        list[str] | None,
        typer.Option(help="Only this service (repeat for several). Default: every one."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The counts as JSON on stdout.")] = False,
    url: IntakeUrl = "",
    username: Username = "admin",
    password: Password = DEV_PASSWORD,
) -> None:
    """Each dead-letter queue: how many messages, and how many for each reason."""
    chosen = service or list(SERVICES)
    for name in chosen:
        if name not in SERVICES:
            raise typer.BadParameter(f"không có dịch vụ '{name}' ({', '.join(SERVICES)})")

    async def work() -> list[dict[str, Any]]:
        out = []
        for name in chosen:
            answer = await _call(name, url, username, password, "GET", "/api/v1/dead-letters")
            out += answer["queues"]
        return out

    queues = run(work)
    if as_json:
        sys.stdout.write(json.dumps(queues, ensure_ascii=False, indent=2) + "\n")
        return
    for q in queues:
        more = "" if q["examined"] == q["messages"] else f" (đã đọc {q['examined']})"
        console.print(f"{q['dead_letter_queue']}: {q['messages']} thư{more}")
        for r in q["reasons"]:
            console.print(f"  {r['messages']:>6}  {r['reason']}")


@dead_letters_app.command("show")
def show(
    queue: Annotated[str, typer.Argument(help="The consumer queue, e.g. intake.inbound.")],
    message_id: Annotated[str, typer.Argument(help="The message's id (an event id).")],
    url: IntakeUrl = "",
    username: Username = "admin",
    password: Password = DEV_PASSWORD,
) -> None:
    """One dead letter as JSON on stdout: reason, headers, body (sealed personal data stays
    sealed), and whether it may be replayed."""
    service = service_of(queue)
    found = run(
        lambda: _call(
            service, url, username, password, "GET", f"/api/v1/dead-letters/{queue}/{message_id}"
        )
    )
    sys.stdout.write(json.dumps(found, ensure_ascii=False, indent=2) + "\n")


@dead_letters_app.command("replay")
def replay(
    queue: Annotated[str, typer.Argument(help="The consumer queue, e.g. intake.inbound.")],
    reason: Reason = None,
    message_id: MessageIds = None,
    everything: Everything = False,
    url: IntakeUrl = "",
    username: Username = "admin",
    password: Password = DEV_PASSWORD,
) -> None:
    """Publish dead letters again to the queue they came from, as if their first publisher sent
    them now (only those the service itself dead-lettered; fix what refused them first)."""
    service = service_of(queue)
    body = _selection(queue, reason, message_id, everything)
    answer = run(
        lambda: _call(
            service, url, username, password, "POST", "/api/v1/dead-letters/replay", json=body
        )
    )
    console.print(f"{queue}: đã phát lại {answer['replayed']} thư.")
    for r in answer["refused"]:
        console.print(f"[yellow]không phát lại {r['message_id']}:[/yellow] {r['why']}")


@dead_letters_app.command("purge")
def purge(
    queue: Annotated[str, typer.Argument(help="The consumer queue, e.g. intake.inbound.")],
    reason: Reason = None,
    message_id: MessageIds = None,
    everything: Everything = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do it without asking.")] = False,
    url: IntakeUrl = "",
    username: Username = "admin",
    password: Password = DEV_PASSWORD,
) -> None:
    """Delete dead letters for good."""
    service = service_of(queue)
    body = _selection(queue, reason, message_id, everything)
    if not yes and not typer.confirm(f"Xóa hẳn các thư đã chọn trong {queue}.dlq?"):
        raise typer.Exit(1)
    answer = run(
        lambda: _call(
            service, url, username, password, "POST", "/api/v1/dead-letters/purge", json=body
        )
    )
    console.print(f"{queue}: đã xóa {answer['purged']} thư.")

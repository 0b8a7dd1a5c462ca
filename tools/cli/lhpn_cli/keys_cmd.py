"""`lhpn keys list|create|revoke`: other systems' API keys through intake's admin routes (see
`accounts`). A key is shown once, when it is created; intake keeps only its hash."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from . import accounts
from .broker_users import write_secret
from .common import (
    DEV_PASSWORD,
    Failed,
    IntakeUrl,
    Password,
    Username,
    admin_client,
    console,
    default_url,
    run,
)

keys_app = typer.Typer(
    help="API keys of other systems: list them, create one (shown once), revoke one.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


@keys_app.command("list")
def list_keys(
    as_json: Annotated[
        bool, typer.Option("--json", help="JSON on standard output, for scripts.")
    ] = False,
    url: IntakeUrl = "",
    username: Username = "admin",
    password: Password = DEV_PASSWORD,
) -> None:
    """List the keys: id, name, how the key starts, unit, routes and event types, broker user,
    revoked — never the key itself."""

    async def work() -> list[dict[str, Any]]:
        async with admin_client(url or default_url("intake"), username, password) as client:
            return await accounts.list_keys(client)

    keys = run(work)
    accounts.show(keys, accounts.KEY_COLUMNS, as_json=as_json)
    console.print(f"{len(keys)} khóa ({sum(1 for k in keys if k['revoked'])} đã thu hồi).")


@keys_app.command("create")
def create(
    name: Annotated[
        str, typer.Argument(help="The system's name, e.g. hotline (lower case, digits, . _ -).")
    ],
    unit: Annotated[
        str, typer.Option(help="The unit it acts for: that unit and every unit below it.")
    ],
    route: Annotated[
        list[str] | None,
        typer.Option(
            help="A permission it may use (repeat), as `x-permission.name` in the services' "
            "OpenAPI, e.g. activities.record. None given: every route open to systems.",
        ),
    ] = None,
    event: Annotated[
        list[str] | None,
        typer.Option(
            help="An event type it may send (repeat): activity.recorded.v1, activity.voided.v1, "
            "report.submitted.v1, case.opened.v1. None given: all of them.",
        ),
    ] = None,
    broker_user: Annotated[
        str | None,
        typer.Option(
            help="The RabbitMQ user it publishes with on lhpn.inbound (made by `lhpn broker "
            "add-system`): bound to this key's unit and event types, refused once it is revoked.",
        ),
    ] = None,
    key_file: Annotated[
        Path | None,
        typer.Option(
            help="Write the key to this new file (mode 0600) instead of printing it.",
            dir_okay=False,
        ),
    ] = None,
    url: IntakeUrl = "",
    username: Username = "admin",
    password: Password = DEV_PASSWORD,
) -> None:
    """Create a key for another system. The key is printed once on standard output (or written
    to --key-file) and can never be shown again: intake stores only its hash."""
    if key_file is not None and key_file.exists():
        console.print(f"[red]Không thực hiện được:[/red] {key_file} đã có: không ghi đè.")
        raise typer.Exit(1)

    async def work() -> dict[str, Any]:
        async with admin_client(url or default_url("intake"), username, password) as client:
            return await accounts.create_key(
                client, name, unit, routes=route or (), events=event or (), broker_user=broker_user
            )

    key = run(work)
    console.print(
        f"Khóa {key['key_id']} ({key['name']}) cho đơn vị {key['unit_id']} và các đơn vị trực "
        "thuộc; chỉ hiện một lần."
    )
    if key_file is None:
        typer.echo(key["key"])
        return
    try:
        write_secret(key_file, key["key"])
    except Failed as exc:  # the file appeared meanwhile: the key is still shown, once
        console.print(f"[red]{exc}[/red] Khóa:")
        typer.echo(key["key"])
        raise typer.Exit(1) from exc
    console.print(f"Khóa đã ghi vào {key_file} (chỉ người chạy lệnh đọc được).")


@keys_app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (`lhpn keys list`).")],
    url: IntakeUrl = "",
    username: Username = "admin",
    password: Password = DEV_PASSWORD,
) -> None:
    """Revoke a key: intake refuses it from the next request, every other service as soon as
    it hears of it (well under a second)."""

    async def work() -> dict[str, Any]:
        async with admin_client(url or default_url("intake"), username, password) as client:
            return await accounts.revoke_key(client, key_id)

    key = run(work)
    console.print(f"Khóa {key['key_id']} ({key['name']}) đã thu hồi lúc {key['revoked_at']}.")

"""`lhpn users list|create|disable|enable|reset-password|set-role`: staff accounts through
intake's admin routes (see `accounts`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from . import accounts
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

users_app = typer.Typer(
    help="Staff accounts: list, create, disable, enable, reset a password, change role or unit.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

ROLES = ", ".join(accounts.USER_ROLES)
Who = Annotated[str, typer.Argument(metavar="USERNAME", help="The account's username.")]
Role = Annotated[str, typer.Option(help=f"The role: {ROLES}.", show_default=False)]
Unit = Annotated[
    str | None,
    typer.Option(
        help="The unit's code (the user acts in it and every unit below it); none for an "
        "admin or a viewer of the whole province.",
    ),
]
PasswordFile = Annotated[
    Path | None,
    typer.Option(
        help="Take the password from this file; or, when it does not exist, write the generated "
        "one there (mode 0600) instead of printing it.",
        dir_okay=False,
    ),
]
PasswordStdin = Annotated[
    bool,
    typer.Option("--password-stdin", help="Read the password from one line of standard input."),
]
Json = Annotated[bool, typer.Option("--json", help="JSON on standard output, for scripts.")]


def _done(user: dict[str, Any], what: str) -> None:
    state = "đang dùng" if user["enabled"] else "đã khóa"
    unit = f", đơn vị {user['unit_id']}" if user.get("unit_id") else ""
    console.print(f"{user['username']}: {what} (vai trò {user['role']}{unit}, {state}).")


@users_app.command("list")
def list_users(
    unit: Annotated[
        str | None, typer.Option(help="Only users of this unit and the units below it.")
    ] = None,
    role: Annotated[str | None, typer.Option(help=f"Only this role: {ROLES}.")] = None,
    as_json: Json = False,
    url: IntakeUrl = "",
    username: Username = "admin",
    password: Password = DEV_PASSWORD,
) -> None:
    """List the accounts (never their passwords): username, role, unit, enabled."""

    async def work() -> list[dict[str, Any]]:
        async with admin_client(url or default_url("intake"), username, password) as client:
            return await accounts.list_users(client, unit_id=unit, role=role)

    users = run(work)
    accounts.show(users, accounts.USER_COLUMNS, as_json=as_json)
    console.print(f"{len(users)} tài khoản.")


@users_app.command("create")
def create(
    who: Who,
    role: Role,
    unit: Unit = None,
    password_file: PasswordFile = None,
    password_stdin: PasswordStdin = False,
    url: IntakeUrl = "",
    username: Username = "admin",
    password: Password = DEV_PASSWORD,
) -> None:
    """Create an account. Its password is generated and printed once (or written to
    --password-file), unless given on standard input or in an existing --password-file."""
    new, fresh = new_password(password_file, password_stdin)

    async def work() -> dict[str, Any]:
        async with admin_client(url or default_url("intake"), username, password) as client:
            return await accounts.create_user(client, who, new, role, unit)

    _done(run(work), "đã tạo")
    hand_over(new, fresh, password_file)


@users_app.command("disable")
def disable(
    who: Who,
    url: IntakeUrl = "",
    username: Username = "admin",
    password: Password = DEV_PASSWORD,
) -> None:
    """Lock an account: every session of it is refused from the next request."""
    _set_enabled(who, False, url, username, password)


@users_app.command("enable")
def enable(
    who: Who,
    url: IntakeUrl = "",
    username: Username = "admin",
    password: Password = DEV_PASSWORD,
) -> None:
    """Unlock a locked account: the user signs in again with the same password."""
    _set_enabled(who, True, url, username, password)


def _set_enabled(who: str, enabled: bool, url: str, username: str, password: str) -> None:
    async def work() -> dict[str, Any]:
        async with admin_client(url or default_url("intake"), username, password) as client:
            return await accounts.set_enabled(client, who, enabled)

    _done(run(work), "đã mở khóa" if enabled else "đã khóa, mọi phiên đăng nhập bị từ chối")


@users_app.command("reset-password")
def reset_password(
    who: Who,
    password_file: PasswordFile = None,
    password_stdin: PasswordStdin = False,
    url: IntakeUrl = "",
    username: Username = "admin",
    password: Password = DEV_PASSWORD,
) -> None:
    """Give a user who lost their password a new one (generated and printed once unless given);
    their sessions end."""
    new, fresh = new_password(password_file, password_stdin)

    async def work() -> dict[str, Any]:
        async with admin_client(url or default_url("intake"), username, password) as client:
            return await accounts.reset_password(client, who, new)

    _done(run(work), "đã đặt lại mật khẩu, các phiên cũ bị từ chối")
    hand_over(new, fresh, password_file)


@users_app.command("set-role")
def set_role(
    who: Who,
    role: Role,
    unit: Unit = None,
    url: IntakeUrl = "",
    username: Username = "admin",
    password: Password = DEV_PASSWORD,
) -> None:
    """Change a user's role and unit; their sessions end (they sign in again)."""

    async def work() -> dict[str, Any]:
        async with admin_client(url or default_url("intake"), username, password) as client:
            return await accounts.set_role(client, who, role, unit)

    _done(run(work), "đã đổi vai trò/đơn vị, các phiên cũ bị từ chối")


def new_password(password_file: Path | None, from_stdin: bool) -> tuple[str, bool]:
    try:
        return accounts.choose_password(password_file, from_stdin)
    except Failed as exc:
        console.print(f"[red]Không thực hiện được:[/red] {exc}")
        raise typer.Exit(1) from exc


def hand_over(secret: str, generated: bool, password_file: Path | None) -> None:
    """A generated password reaches the operator: alone on standard output, this once, or
    already in the file they named."""
    if not generated:
        return
    if password_file is None:
        typer.echo(secret)
    else:
        console.print(f"Mật khẩu đã ghi vào {password_file} (chỉ người chạy lệnh đọc được).")

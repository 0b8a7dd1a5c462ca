"""`lhpn broker add-system`: another system's RabbitMQ account, its permissions and its binding
(see `broker_users`)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import httpx
import typer

from lhpn_shared.settings import DEFAULT_BROKER_USER_PREFIX

from . import broker_users as accounts
from .common import Failed, console, progress

broker_app = typer.Typer(
    help="RabbitMQ accounts of other systems that publish events on lhpn.inbound.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


@broker_app.command("add-system")
def add_system(
    user: Annotated[
        str, typer.Argument(help="The system's RabbitMQ user name, e.g. lhpn-sys-hotline.")
    ],
    unit: Annotated[
        str,
        typer.Option(help="The unit it writes for: that unit and every unit below it (e.g. 555)."),
    ],
    event: Annotated[
        list[str],
        typer.Option(
            help="A routing key it may publish (repeat): activity.recorded.v1, "
            "activity.voided.v1, report.submitted.v1, case.opened.v1.",
        ),
    ],
    management_url: Annotated[
        str,
        typer.Option(
            envvar="RABBIT_MANAGEMENT_URL",
            help="RabbitMQ's management API (compose: http://rabbitmq:15672, or "
            "http://127.0.0.1:$RABBIT_MANAGEMENT_PORT from the host).",
        ),
    ] = "http://127.0.0.1:15672",
    admin_user: Annotated[
        str, typer.Option(envvar="RABBIT_ADMIN_USERNAME", help="The broker's administrator.")
    ] = "lhpn-admin",
    admin_password: Annotated[
        str,
        typer.Option(envvar="RABBIT_ADMIN_PASSWORD", help="Its password.", show_default=False),
    ] = "",
    rabbitmqctl: Annotated[
        bool,
        typer.Option(
            "--rabbitmqctl",
            help="Use `rabbitmqctl import_definitions` on this machine instead of the "
            "management API (the broker of `make run`).",
        ),
    ] = False,
    vhost: Annotated[str, typer.Option(envvar="RABBIT_VHOST", help="The broker's vhost.")] = "/",
    prefix: Annotated[
        str,
        typer.Option(
            envvar="BROKER_USER_PREFIX", help="The services' user prefix (their names are refused)."
        ),
    ] = DEFAULT_BROKER_USER_PREFIX,
    password_file: Annotated[
        Path | None,
        typer.Option(
            help="Take the password from this file instead of generating one; or, when the "
            "file does not exist, write the generated one there (mode 0600) instead of "
            "printing it.",
            dir_okay=False,
        ),
    ] = None,
    env_file: Annotated[
        Path | None,
        typer.Option(
            help="Compose's .env: INBOUND_SYSTEMS gets the binding and INBOUND_SYSTEM_PASSWORDS "
            "the password, so that `docker compose up -d` keeps both (and restarts intake and "
            "cases with the binding).",
            dir_okay=False,
        ),
    ] = None,
    host: Annotated[
        str, typer.Option(help="Broker host name in the URL handed to the system.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Broker AMQP port in that URL.")] = 5672,
) -> None:
    """Create (or update) the RabbitMQ account of a system that publishes on lhpn.inbound: it
    may write there only, only these routing keys; intake and cases accept its events only for
    the unit and the units below it. Prints the system's AMQP URL once (its password), unless
    --password-file says where to keep it."""
    try:
        binding = accounts.binding_for(
            user, unit, event, reserved=accounts.reserved_users(prefix, admin_user)
        )
        if password_file is not None and password_file.exists():
            password, generated = password_file.read_text(encoding="utf-8").strip(), False
        else:
            password, generated = accounts.new_password(), True
        document = accounts.account_document(binding, password, vhost)
        with progress(counted=False) as bars:
            bars.add_task(f"Tạo tài khoản {user} trên RabbitMQ", total=None)
            if rabbitmqctl:
                accounts.apply_via_rabbitmqctl(document)
            else:
                asyncio.run(
                    accounts.apply_via_management(
                        management_url, admin_user, admin_password, document
                    )
                )
        if env_file is not None:
            accounts.update_env_file(env_file, binding, password)
        if password_file is not None and generated:
            accounts.write_secret(password_file, password)
    except Failed as exc:
        console.print(f"[red]Không thực hiện được:[/red] {exc}")
        raise typer.Exit(1) from exc
    except httpx.HTTPError as exc:
        console.print(f"[red]Không kết nối được RabbitMQ ({management_url}):[/red] {exc!r}")
        raise typer.Exit(2) from exc
    keys = ", ".join(sorted(binding.routing_keys))
    console.print(
        f"Tài khoản {user}: chỉ ghi vào lhpn.inbound, với {keys}, cho đơn vị {unit} và các đơn "
        "vị trực thuộc."
    )
    entry = f"{user}:{unit}:{'|'.join(sorted(binding.routing_keys))}"
    if env_file is None:
        console.print(
            f"Thêm {entry} vào INBOUND_SYSTEMS của intake và cases rồi khởi động lại hai dịch vụ "
            "này (với compose: dùng --env-file để ghi cả mật khẩu vào .env)."
        )
    else:
        console.print(
            f"Đã ghi vào {env_file}: chạy `docker compose up -d` để intake và cases nhận."
        )
    if password_file is None:
        typer.echo(accounts.amqp_url(user, password, host, port, vhost))  # shown this once
    elif generated:
        console.print(f"Mật khẩu đã ghi vào {password_file} (chỉ người chạy lệnh đọc được).")

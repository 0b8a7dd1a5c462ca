"""Another system's RabbitMQ account and its binding (README "Another system on the broker").

The account is the one the run command, the tests and compose make from `INBOUND_SYSTEMS`
(`lhpn_shared.broker_accounts.system_account`: write on `lhpn.inbound` only, with the routing
keys of its binding, nothing else), imported as a definitions document — through RabbitMQ's
management HTTP API (`POST /api/definitions`, compose: the `rabbitmq` container's port 15672)
or `rabbitmqctl import_definitions` on the broker's own machine (the run command's broker).
The binding itself (unit subtree, routing keys) is read by intake and cases from
`INBOUND_SYSTEMS` when they start; with `--env-file` it is written into compose's `.env`
together with the password, so that the broker's definitions rendered at the next `up`
keep the account too.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from lhpn_shared.broker_accounts import definitions, system_account
from lhpn_shared.contracts.owners import SERVICES
from lhpn_shared.inbound import (
    InboundBinding,
    InboundSystemsError,
    format_inbound_systems,
    parse_inbound_systems,
)

from .common import Failed


def binding_for(
    user: str, unit_id: str, events: Iterable[str], *, reserved: set[str]
) -> InboundBinding:
    """The binding, checked as `INBOUND_SYSTEMS` checks it; a service's or the
    administrator's user name is refused."""
    if user in reserved:
        raise Failed(f"'{user}' là tài khoản của một dịch vụ hoặc của quản trị: chọn tên khác.")
    try:
        parsed = parse_inbound_systems(f"{user}:{unit_id}:{'|'.join(events)}")
    except InboundSystemsError as exc:
        raise Failed(str(exc).replace("INBOUND_SYSTEMS entry 1", "the account")) from exc
    return parsed[user]


def reserved_users(prefix: str, admin: str) -> set[str]:
    return {f"{prefix}{s}" for s in SERVICES} | {admin, "guest"}


def new_password() -> str:
    return secrets.token_urlsafe(24)


def account_document(binding: InboundBinding, password: str, vhost: str) -> dict[str, Any]:
    """The user (salted hash only), its permissions and topic permissions in `vhost`."""
    return definitions(vhost, [system_account(binding, password)], with_topology=False)


async def apply_via_management(
    url: str,
    admin_user: str,
    admin_password: str,
    document: dict[str, Any],
    transport: httpx.AsyncBaseTransport | None = None,
) -> None:
    """`POST /api/definitions` on RabbitMQ's management API, as its administrator."""
    async with httpx.AsyncClient(
        base_url=url, auth=(admin_user, admin_password), timeout=30, transport=transport
    ) as client:
        r = await client.post("/api/definitions", json=document)
    if r.status_code == 401:
        raise Failed("RabbitMQ từ chối tài khoản quản trị (RABBIT_ADMIN_USERNAME/PASSWORD).")
    if r.status_code >= 300:
        raise Failed(f"RabbitMQ trả lời {r.status_code}: {r.text[:300]}")


def apply_via_rabbitmqctl(document: dict[str, Any], rabbitmqctl: str = "rabbitmqctl") -> None:
    """`rabbitmqctl import_definitions` reading the document from standard input (no password
    on any command line; the node is `RABBITMQ_NODENAME`'s, the local one by default)."""
    import json

    try:
        done = subprocess.run(  # noqa: S603 - a fixed program name, the document on stdin
            [rabbitmqctl, "-q", "import_definitions"],
            input=json.dumps(document),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Failed(f"không chạy được {rabbitmqctl}: {exc}") from exc
    if done.returncode != 0:
        raise Failed(f"{rabbitmqctl} import_definitions: {(done.stderr or done.stdout)[-500:]}")


def write_secret(path: Path, value: str) -> None:
    """A new file only its owner reads (never replacing one)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise Failed(f"{path} đã có: không ghi đè.") from exc
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(value + "\n")


def amqp_url(user: str, password: str, host: str, port: int, vhost: str) -> str:
    path = "" if vhost == "/" else quote(vhost, safe="")
    return f"amqp://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}/{path}"


def update_env_file(path: Path, binding: InboundBinding, password: str) -> None:
    """Put the binding into `INBOUND_SYSTEMS` and the password into `INBOUND_SYSTEM_PASSWORDS`
    of a compose `.env` file (replacing what it said about this user; other lines kept)."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []

    def current(name: str) -> str:
        for line in lines:
            if line.startswith(f"{name}="):
                return line.split("=", 1)[1].strip()
        return ""

    try:
        systems = parse_inbound_systems(current("INBOUND_SYSTEMS"))
    except InboundSystemsError as exc:
        raise Failed(f"{path}: {exc}") from exc
    systems[binding.broker_user] = binding
    passwords = [
        item
        for item in filter(
            None, (p.strip() for p in current("INBOUND_SYSTEM_PASSWORDS").split(","))
        )
        if item.partition(":")[0] != binding.broker_user
    ]
    passwords.append(f"{binding.broker_user}:{password}")
    values = {
        "INBOUND_SYSTEMS": format_inbound_systems(list(systems.values())),
        "INBOUND_SYSTEM_PASSWORDS": ",".join(passwords),
    }
    out: list[str] = []
    for line in lines:
        name = line.split("=", 1)[0] if "=" in line and not line.startswith("#") else None
        if name in values:
            out.append(f"{name}={values.pop(name)}")
        else:
            out.append(line)
    out += [f"{name}={value}" for name, value in values.items()]
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")
    tmp.replace(path)

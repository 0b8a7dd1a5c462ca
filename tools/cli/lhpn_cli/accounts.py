"""Users and API keys through intake's admin routes (`/api/v1/users…`, `/api/v1/api-keys…`),
for `lhpn users` and `lhpn keys`: the requests, the passwords and keys the operator is handed,
and the tables they read. Intake validates, audits and announces every change
(`user.upserted`, `api_key.upserted`), so a disabled user or a revoked key is refused
everywhere; nothing here touches a database."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

import httpx
from rich.console import Console
from rich.table import Table

from .broker_users import new_password, write_secret
from .common import Failed, check

USER_ROLES = ("admin", "province_staff", "district_staff", "commune_staff", "viewer")
IDENTIFIERS = {"username", "key_id", "name", "prefix", "unit_id"}
USER_COLUMNS = ("username", "role", "unit_id", "enabled", "updated_at")
KEY_COLUMNS = (
    "key_id",
    "name",
    "prefix",
    "unit_id",
    "allowed_routes",
    "allowed_events",
    "broker_user",
    "revoked",
    "created_by",
)


def _user(username: str) -> str:
    return f"/api/v1/users/{quote(username, safe='')}"


def _key(key_id: str) -> str:
    return f"/api/v1/api-keys/{quote(key_id, safe='')}"


# ---- users ---------------------------------------------------------------------------------------


async def list_users(
    client: httpx.AsyncClient, *, unit_id: str | None = None, role: str | None = None
) -> list[dict[str, Any]]:
    """Every user (of the unit's subtree, of the role), following intake's pages."""
    params: dict[str, str] = {"limit": "1000"}
    if unit_id:
        params["unit_id"] = unit_id
    if role:
        params["role"] = role
    users: list[dict[str, Any]] = []
    while True:
        page = check(await client.get("/api/v1/users", params=params))
        users.extend(page["items"])
        if not page.get("next_cursor"):
            return users
        params["cursor"] = page["next_cursor"]


async def create_user(
    client: httpx.AsyncClient, username: str, password: str, role: str, unit_id: str | None
) -> dict[str, Any]:
    body = {"username": username, "password": password, "role": role, "unit_id": unit_id}
    answer: dict[str, Any] = check(await client.post("/api/v1/users", json=body))
    return answer


async def set_enabled(client: httpx.AsyncClient, username: str, enabled: bool) -> dict[str, Any]:
    r = await client.put(f"{_user(username)}/enabled", json={"enabled": enabled})
    answer: dict[str, Any] = check(r)
    return answer


async def reset_password(client: httpx.AsyncClient, username: str, password: str) -> dict[str, Any]:
    r = await client.put(f"{_user(username)}/password", json={"password": password})
    answer: dict[str, Any] = check(r)
    return answer


async def set_role(
    client: httpx.AsyncClient, username: str, role: str, unit_id: str | None
) -> dict[str, Any]:
    r = await client.put(f"{_user(username)}/role", json={"role": role, "unit_id": unit_id})
    answer: dict[str, Any] = check(r)
    return answer


# ---- API keys ------------------------------------------------------------------------------------


async def list_keys(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    answer: list[dict[str, Any]] = check(await client.get("/api/v1/api-keys"))
    return answer


async def create_key(
    client: httpx.AsyncClient,
    name: str,
    unit_id: str,
    *,
    routes: Sequence[str] = (),
    events: Sequence[str] = (),
    broker_user: str | None = None,
) -> dict[str, Any]:
    """The key as intake created it, `key` included (intake shows it this once). No route or
    event type given: not restricted by that field (null), as intake's route reads it."""
    body = {
        "name": name,
        "unit_id": unit_id,
        "allowed_routes": list(routes) or None,
        "allowed_events": list(events) or None,
        "broker_user": broker_user,
    }
    answer: dict[str, Any] = check(await client.post("/api/v1/api-keys", json=body))
    return answer


async def revoke_key(client: httpx.AsyncClient, key_id: str) -> dict[str, Any]:
    answer: dict[str, Any] = check(await client.post(f"{_key(key_id)}/revoke"))
    return answer


# ---- secrets handed to the operator --------------------------------------------------------------


def choose_password(
    password_file: Path | None, from_stdin: bool, stdin: TextIO = sys.stdin
) -> tuple[str, bool]:
    """(the new password, whether it was generated). It is one line of standard input, or the
    content of an existing `password_file`, or generated — and then written to `password_file`
    at once when one is named (a new file only its owner reads: a rerun after a failed request
    reuses it). Never an argument: a command line is visible to every user of the machine."""
    if from_stdin:
        password = stdin.readline().strip()
        if not password:
            raise Failed("Không đọc được mật khẩu từ đầu vào chuẩn (dòng trống).")
        return password, False
    if password_file is not None and password_file.exists():
        password = password_file.read_text(encoding="utf-8").strip()
        if not password:
            raise Failed(f"{password_file} không có mật khẩu.")
        return password, False
    password = new_password()
    if password_file is not None:
        write_secret(password_file, password)
    return password, True


# ---- tables --------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "có" if value else "không"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "—"
    return str(value)


def show(rows: Iterable[dict[str, Any]], columns: Sequence[str], *, as_json: bool) -> None:
    """Rows on standard output: a table for people, or JSON (`--json`) for scripts."""
    rows = list(rows)
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, indent=2), flush=True)
        return
    table = Table(show_lines=False)
    for c in columns:  # an identifier is never broken over two lines
        table.add_column(c, no_wrap=c in IDENTIFIERS)
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    Console(soft_wrap=False).print(table)

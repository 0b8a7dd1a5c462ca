"""RabbitMQ accounts and the topology they use, as a definitions document RabbitMQ imports.

Each service connects as its own user (`<prefix><service>`) that may:
- configure only its own queues and their DLQs (the exchanges and the other services' queues
  are declared beforehand, from this same document);
- write to `lhpn.events` only with the routing keys of the event types it owns (a topic
  permission), to `lhpn.dead-letter` (refused messages), and bind its own queues;
- read its own queues and the exchanges they are bound to, binding only the routing keys its
  queues consume (a topic read permission);
- publish on `lhpn.replay` only with its own queues' names as routing keys (a topic
  permission): a dead letter it replays reaches the queue it came from and no other.

An inbound system's user may only write to `lhpn.inbound`, with the routing keys of its binding.
An operator account (compose's management UI, the tests) may do everything.

`definitions(...)` builds the JSON that `rabbitmqctl import_definitions` and RabbitMQ's
`load_definitions` read: users with salted SHA-256 password hashes (RabbitMQ's own scheme, so no
password is ever written out), the vhost, permissions, topic permissions, exchanges, every
consumer queue of `broker.TOPOLOGY` with its DLQ, and the bindings.

    python -m lhpn_shared.broker_accounts definitions [--output FILE] [--passwords-dir DIR]

reads the passwords from the environment (`RABBIT_<SERVICE>_PASSWORD`, `RABBIT_ADMIN_PASSWORD`,
`INBOUND_SYSTEM_PASSWORDS`) or, with `--passwords-dir`, from `<user>.password` files there,
creating the missing ones (the run command's development passwords).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import secrets
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faststream.rabbit import RabbitExchange
from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from .broker import (
    DEAD_LETTERS,
    EVENTS,
    EXCHANGES,
    INBOUND,
    OWN_QUEUES,
    OWN_RESOURCES,
    REPLAY,
    TOPOLOGY,
    queues_of,
)
from .contracts.owners import SERVICES, owned_by
from .inbound import InboundBinding, parse_inbound_systems
from .settings import DEFAULT_BROKER_USER_PREFIX

HASHING = "rabbit_password_hashing_sha256"
NOTHING = "^$"
EVERYTHING = ".*"


@dataclass(frozen=True)
class Permissions:
    """Regular expressions over resource names (queues, exchanges), per AMQP operation."""

    configure: str
    write: str
    read: str


@dataclass(frozen=True)
class TopicPermission:
    """Regular expressions over routing keys, for one topic exchange."""

    exchange: str
    write: str
    read: str


@dataclass(frozen=True)
class Account:
    name: str
    password: str = field(repr=False)
    permissions: Permissions
    topic_permissions: tuple[TopicPermission, ...] = ()
    tags: tuple[str, ...] = ()


def exactly(names: Iterable[str]) -> str:
    """A regex matching exactly these names (none: nothing)."""
    names = sorted(set(names))
    if not names:
        return NOTHING
    return "^(" + "|".join(re.escape(n) for n in names) + ")$"


def routing_keys_of(event_types: Iterable[str]) -> str:
    """Every version of these event types: `^(unit\\.upserted|…)\\.v[0-9]+$`."""
    types = sorted(set(event_types))
    if not types:
        return NOTHING
    return "^(" + "|".join(re.escape(t) for t in types) + r")\.v[0-9]+$"


def service_account(service: str, user: str, password: str) -> Account:
    consumed = [b.queue for b in queues_of(service)]
    own = [name for q in consumed for name in (q, f"{q}.dlq")]
    sources = {b.exchange.name for b in queues_of(service)}

    def bound_keys(exchange: RabbitExchange) -> list[str]:
        """The routing keys its queues bind on `exchange`: the only ones it may bind (a topic
        read permission), so it cannot listen in on other event types."""
        return [k for b in queues_of(service) if b.exchange is exchange for k in b.routing_keys]

    publishes = owned_by(service)
    extra = OWN_RESOURCES.get(service)

    def with_own(regex: str, extra: str | None = extra) -> str:
        """…and the resources the service declares itself (aggregation's partitions)."""
        return regex if extra is None else f"{regex}|^({extra})$"

    replays = with_own(exactly(consumed), OWN_QUEUES.get(service))

    return Account(
        name=user,
        password=password,
        permissions=Permissions(
            configure=with_own(exactly(own)),
            write=with_own(
                exactly(
                    [*own, DEAD_LETTERS.name, REPLAY.name, *([EVENTS.name] if publishes else [])]
                )
            ),
            read=with_own(exactly([*own, DEAD_LETTERS.name, REPLAY.name, *sources])),
        ),
        topic_permissions=(
            TopicPermission(
                EVENTS.name, write=routing_keys_of(publishes), read=exactly(bound_keys(EVENTS))
            ),
            TopicPermission(INBOUND.name, write=NOTHING, read=exactly(bound_keys(INBOUND))),
            # its own queues' names: replays to them, and their bindings
            TopicPermission(REPLAY.name, write=replays, read=replays),
        ),
    )


def system_account(binding: InboundBinding, password: str) -> Account:
    return Account(
        name=binding.broker_user,
        password=password,
        permissions=Permissions(configure=NOTHING, write=exactly([INBOUND.name]), read=NOTHING),
        topic_permissions=(
            TopicPermission(INBOUND.name, write=exactly(binding.routing_keys), read=NOTHING),
            TopicPermission(EVENTS.name, write=NOTHING, read=NOTHING),
            TopicPermission(REPLAY.name, write=NOTHING, read=NOTHING),
        ),
    )


def operator_account(name: str, password: str, *, administrator: bool) -> Account:
    return Account(
        name=name,
        password=password,
        permissions=Permissions(EVERYTHING, EVERYTHING, EVERYTHING),
        tags=("administrator",) if administrator else (),
    )


def hash_password(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's `rabbit_password_hashing_sha256`: base64(salt + sha256(salt + password))."""
    salt = secrets.token_bytes(4) if salt is None else salt
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def topology(vhost: str) -> dict[str, list[dict[str, Any]]]:
    """Exchanges, every consumer queue with its DLQ, and the bindings, from `TOPOLOGY`."""
    exchanges: list[dict[str, Any]] = [
        {
            "name": e.name,
            "vhost": vhost,
            "type": e.type.value,
            "durable": True,
            "auto_delete": False,
            "internal": False,
            "arguments": {},
        }
        for e in EXCHANGES
    ]
    queues: list[dict[str, Any]] = []
    bindings: list[dict[str, Any]] = []

    def bind(source: str, queue: str, key: str) -> None:
        bindings.append(
            {
                "source": source,
                "vhost": vhost,
                "destination": queue,
                "destination_type": "queue",
                "routing_key": key,
                "arguments": {},
            }
        )

    for b in TOPOLOGY.values():
        for name, arguments in ((b.queue, b.arguments), (f"{b.queue}.dlq", {})):
            queues.append(
                {
                    "name": name,
                    "vhost": vhost,
                    "durable": True,
                    "auto_delete": False,
                    "arguments": arguments,
                }
            )
        for key in b.routing_keys:
            bind(b.exchange.name, b.queue, key)
        bind(REPLAY.name, b.queue, b.queue)
        bind(DEAD_LETTERS.name, f"{b.queue}.dlq", b.queue)
    return {"exchanges": exchanges, "queues": queues, "bindings": bindings}


def definitions(
    vhost: str, accounts: Sequence[Account], *, with_topology: bool = True
) -> dict[str, Any]:
    """The document `rabbitmqctl import_definitions` / `load_definitions` reads."""
    doc: dict[str, Any] = {
        "users": [
            {
                "name": a.name,
                "password_hash": hash_password(a.password),
                "hashing_algorithm": HASHING,
                "tags": list(a.tags),
            }
            for a in accounts
        ],
        "vhosts": [{"name": vhost}],
        "permissions": [
            {
                "user": a.name,
                "vhost": vhost,
                "configure": a.permissions.configure,
                "write": a.permissions.write,
                "read": a.permissions.read,
            }
            for a in accounts
        ],
        "topic_permissions": [
            {
                "user": a.name,
                "vhost": vhost,
                "exchange": t.exchange,
                "write": t.write,
                "read": t.read,
            }
            for a in accounts
            for t in a.topic_permissions
        ],
    }
    if with_topology:
        doc.update(topology(vhost))
    return doc


def service_accounts(prefix: str, passwords: Mapping[str, str]) -> list[Account]:
    """One account per service; `passwords`: service → password."""
    return [service_account(s, f"{prefix}{s}", passwords[s]) for s in SERVICES]


# ---- the command ------------------------------------------------------------------------------


class AccountsSettings(BaseSettings):
    """What the command reads from the environment (compose's init step passes these)."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False, env_ignore_empty=True)

    rabbit_vhost: str = "/"
    broker_user_prefix: str = DEFAULT_BROKER_USER_PREFIX
    rabbit_intake_password: SecretStr | None = None
    rabbit_cases_password: SecretStr | None = None
    rabbit_reminders_password: SecretStr | None = None
    rabbit_aggregation_password: SecretStr | None = None
    rabbit_admin_username: str = Field(default="lhpn-admin", min_length=1)
    rabbit_admin_password: SecretStr | None = None
    inbound_systems: str = ""
    inbound_system_passwords: SecretStr = SecretStr("")


class PasswordStore:
    """`<user>.password` files (mode 0600) in a directory; missing ones are generated."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def get(self, user: str) -> str:
        path = self.directory / f"{user}.password"
        if not path.exists():
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(24))
        return path.read_text().strip()


def _accounts_from(settings: AccountsSettings, store: PasswordStore | None) -> list[Account]:
    problems: list[str] = []

    def password(user: str, secret: SecretStr | None, env: str) -> str:
        if store is not None:
            return store.get(user)
        if secret is None or not secret.get_secret_value():
            problems.append(f"{env} is not set")
            return ""
        return secret.get_secret_value()

    prefix = settings.broker_user_prefix
    passwords = {
        s: password(
            f"{prefix}{s}",
            getattr(settings, f"rabbit_{s}_password"),
            f"RABBIT_{s.upper()}_PASSWORD",
        )
        for s in SERVICES
    }
    accounts = service_accounts(prefix, passwords)
    system_passwords: dict[str, str] = {}
    for item in filter(None, settings.inbound_system_passwords.get_secret_value().split(",")):
        user, sep, secret = item.strip().partition(":")
        if not sep or not secret:
            problems.append("INBOUND_SYSTEM_PASSWORDS entries must be 'broker_user:password'")
            continue
        system_passwords[user] = secret
    for user, binding in parse_inbound_systems(settings.inbound_systems).items():
        given = system_passwords.get(user)
        accounts.append(
            system_account(
                binding,
                given
                if given is not None
                else password(user, None, f"INBOUND_SYSTEM_PASSWORDS ({user})"),
            )
        )
    admin = settings.rabbit_admin_password
    if admin is not None and admin.get_secret_value():
        accounts.append(
            operator_account(
                settings.rabbit_admin_username, admin.get_secret_value(), administrator=True
            )
        )
    if problems:
        raise SystemExit("broker definitions refused:\n  " + "\n  ".join(problems))
    return accounts


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lhpn_shared.broker_accounts")
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("definitions", help="print (or write) the definitions document")
    cmd.add_argument("--output", type=Path, help="write here (mode 0644) instead of stdout")
    cmd.add_argument(
        "--passwords-dir",
        type=Path,
        help="read each account's password from <user>.password here, generating missing ones",
    )
    args = parser.parse_args(argv)
    try:
        settings = AccountsSettings()
        store = PasswordStore(args.passwords_dir) if args.passwords_dir else None
        doc = definitions(settings.rabbit_vhost, _accounts_from(settings, store))
    except (ValidationError, ValueError) as exc:
        raise SystemExit(f"broker definitions refused: {exc}") from None
    text = json.dumps(doc, indent=2, ensure_ascii=False)
    if args.output is None:
        sys.stdout.write(text + "\n")
        return
    if args.output.exists() and not args.output.is_file():
        raise SystemExit(f"--output {args.output} is not a regular file: not replaced")
    tmp = args.output.with_name(args.output.name + ".tmp")
    tmp.write_text(text + "\n", encoding="utf-8")
    tmp.chmod(0o644)  # RabbitMQ's own user reads it; it holds salted hashes, no password
    tmp.replace(args.output)


if __name__ == "__main__":
    main()

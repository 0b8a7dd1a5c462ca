"""Settings base: environment variables read by pydantic-settings (SPEC §10).

Built once in each service's entry point and passed down (STYLE principle 8); tests build
their own instances instead of patching the environment.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import ClassVar, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .inbound import InboundBinding, parse_inbound_systems

DEV_ADMIN_USERNAME = "admin"
DEV_ADMIN_PASSWORD = "admin"  # noqa: S105 - the documented development default, refused in production
DEV_JWT_SECRET = "development-only-jwt-secret-change-me"  # noqa: S105
DEFAULT_BROKER_USER_PREFIX = "lhpn-"
REFUSED = "refused in ENV=production: "
RABBIT_GUEST = "guest"
_MONGO_MECHANISMS_WITHOUT_PASSWORD = {"MONGODB-X509", "MONGODB-AWS", "MONGODB-OIDC"}


class ProductionRefused(RuntimeError):
    """A production start refused for a development default found at run time (not in the
    settings themselves, e.g. a stored password); the message names what to change."""


class Environment(StrEnum):
    development = "development"
    production = "production"


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=None, extra="ignore", case_sensitive=False, hide_input_in_errors=True
    )

    env: Environment = Field(
        default=Environment.production,
        description="unset counts as production: development must be asked for",
    )
    rabbit_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    mongo_url: str = "mongodb://127.0.0.1:27017/"
    mongo_db: str = Field(default="", description="database name; default: the service name")
    mongo_timeout_ms: int = Field(default=3000, ge=100)
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    admin_username: str = DEV_ADMIN_USERNAME
    admin_password: SecretStr = SecretStr(DEV_ADMIN_PASSWORD)
    jwt_secret: SecretStr = SecretStr(DEV_JWT_SECRET)
    jwt_ttl_minutes: int = Field(default=480, ge=1)
    api_keys: str = Field(
        default="",
        description="API keys for other systems: 'name:unit_id:key,...' (unit_id scopes writes)",
    )
    broker_user_prefix: str = Field(
        default=DEFAULT_BROKER_USER_PREFIX,
        pattern=r"^[A-Za-z0-9_.-]*$",
        description="each service's RabbitMQ user is <prefix><service>, e.g. lhpn-intake; "
        "consumers accept an event only from its owning service's user",
    )
    inbound_systems: str = Field(
        default="",
        description="other systems publishing on lhpn.inbound (bootstrap): "
        "'broker_user:unit_id:routing_key|routing_key,...'",
    )
    log_level: str = "INFO"
    relay_batch: int = Field(default=500, ge=1)
    relay_idle_seconds: float = Field(default=1.0, gt=0)
    consumer_prefetch: int = Field(default=100, ge=1)
    consumer_stall_seconds: float = Field(
        default=60.0,
        gt=0,
        description="a consumer holding deliveries without settling any for longer is not "
        "ready (/readyz 503), and its batch flusher is started again",
    )
    consumer_max_attempts: int = Field(
        default=5,
        ge=1,
        description="a message whose handling fails this many times with an unexpected error "
        "(not an outage of the database or broker, which is retried for as long as it lasts) is "
        "dead-lettered with the error, so that it never holds up the queue",
    )
    shutdown_grace_seconds: float = Field(
        default=20.0,
        ge=2,
        description="on SIGTERM the service stops taking work and finishes within this: its "
        "in-flight HTTP requests (a quarter of it at most), the messages its consumers hold, its "
        "background work, then it publishes its outbox and closes its connections; the run "
        "command waits this long (plus a margin) before it kills the process",
    )
    http_host: str = "127.0.0.1"
    max_request_bytes: int = Field(
        default=10 * 1024 * 1024,
        ge=1024,
        description="a request body over this many bytes is refused (413) before it is parsed; "
        "the default lets a report with 5 MB of attachments (base64) and its narrative through",
    )

    service_name: str = "service"

    uses_broker: ClassVar[bool] = True
    """False for a process that never connects to RabbitMQ (the portal): RABBIT_URL unchecked"""
    uses_database: ClassVar[bool] = True
    """False for a process without a database of its own (the portal): MONGO_URL unchecked"""

    @property
    def http_drain_seconds(self) -> float:
        """The part of `shutdown_grace_seconds` left to in-flight HTTP requests."""
        return min(5.0, self.shutdown_grace_seconds / 4)

    @property
    def database(self) -> str:
        return self.mongo_db or self.service_name

    @property
    def broker_user(self) -> str:
        """The RabbitMQ user this service connects as (RABBIT_URL's user; AMQP's default is
        guest). Every message it publishes carries it as `user_id`."""
        return broker_user_of(self.rabbit_url)

    @property
    def expected_broker_user(self) -> str:
        return f"{self.broker_user_prefix}{self.service_name}"

    @field_validator("inbound_systems")
    @classmethod
    def _inbound_systems_parse(cls, value: str) -> str:
        parse_inbound_systems(value)  # raises with the entry at fault, named INBOUND_SYSTEMS
        return value

    def parsed_inbound_systems(self) -> dict[str, InboundBinding]:
        """broker user → its binding (unit subtree and routing keys)."""
        return parse_inbound_systems(self.inbound_systems)

    @model_validator(mode="after")
    def _refuse_development_defaults_in_production(self) -> ServiceSettings:
        if self.env is Environment.production:
            problems = self.production_problems()
            if problems:
                raise ValueError(REFUSED + "; ".join(problems))
        return self

    def production_problems(self) -> list[str]:
        """What a production start refuses, each naming the setting to change."""
        problems = []
        if self.admin_password.get_secret_value() == DEV_ADMIN_PASSWORD:
            problems.append("ADMIN_PASSWORD is the development default")
        if not self.admin_password.get_secret_value():
            problems.append("ADMIN_PASSWORD is not set")
        if self.jwt_secret.get_secret_value() == DEV_JWT_SECRET:
            problems.append("JWT_SECRET is the development default")
        if len(self.jwt_secret.get_secret_value()) < 32:
            problems.append("JWT_SECRET must be at least 32 characters")
        user = self.broker_user
        if not self.uses_broker:
            pass
        elif user == RABBIT_GUEST:
            problems.append("RABBIT_URL uses RabbitMQ's guest account")
        elif user != self.expected_broker_user:
            problems.append(
                f"RABBIT_URL connects as '{user}', not as this service's own user "
                f"'{self.expected_broker_user}' (BROKER_USER_PREFIX + service name)"
            )
        if self.uses_database and not mongo_url_has_credentials(self.mongo_url):
            problems.append("MONGO_URL has no credentials (mongodb://user:password@host/...)")
        return problems

    def parsed_api_keys(self) -> dict[str, tuple[str, str]]:
        """key → (system name, unit_id)."""
        out: dict[str, tuple[str, str]] = {}
        for item in filter(None, (p.strip() for p in self.api_keys.split(","))):
            name, unit_id, key = item.split(":", 2)
            out[key] = (name, unit_id)
        return out


def broker_user_of(rabbit_url: str) -> str:
    """The user an AMQP URL authenticates as (RabbitMQ's `guest` when it names none)."""
    username = urlsplit(rabbit_url).username
    return unquote(username) if username else RABBIT_GUEST


def mongo_url_has_credentials(mongo_url: str) -> bool:
    """A user in the URL, or an authentication mechanism that needs no password there."""
    parts = urlsplit(mongo_url)
    if "@" in parts.netloc and parts.netloc.split("@", 1)[0]:
        return True
    mechanisms = parse_qs(parts.query).get("authMechanism", [])
    return any(m.upper() in _MONGO_MECHANISMS_WITHOUT_PASSWORD for m in mechanisms)


S = TypeVar("S", bound=ServiceSettings)


def load_settings(cls: type[S]) -> S:
    """The settings from the environment, or exit with what is wrong, one line per setting
    (a production start refused for a development default says which one)."""
    try:
        return cls()
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]).upper()
            message = str(err["msg"]).removeprefix("Value error, ")
            if message.startswith(REFUSED):  # one line per setting to change
                lines.append(f"  {REFUSED.strip()}")
                lines += [f"    - {p}" for p in message.removeprefix(REFUSED).split("; ")]
            else:
                lines.append(f"  {where}: {message}" if where else f"  {message}")
        print(
            f"cannot start: the settings are refused ({cls.__name__})\n" + "\n".join(lines),
            file=sys.stderr,
        )
        raise SystemExit(2) from None

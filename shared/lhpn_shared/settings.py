"""Settings base: environment variables read by pydantic-settings (SPEC §10).

Built once in each service's entry point and passed down (STYLE principle 8); tests build
their own instances instead of patching the environment.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_ADMIN_USERNAME = "admin"
DEV_ADMIN_PASSWORD = "admin"  # noqa: S105 - the documented development default, refused in production
DEV_JWT_SECRET = "development-only-jwt-secret-change-me"  # noqa: S105


class Environment(StrEnum):
    development = "development"
    production = "production"


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=None, extra="ignore", case_sensitive=False, hide_input_in_errors=True
    )

    env: Environment = Environment.development
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
    log_level: str = "INFO"
    relay_batch: int = Field(default=500, ge=1)
    relay_idle_seconds: float = Field(default=1.0, gt=0)
    consumer_prefetch: int = Field(default=100, ge=1)
    http_host: str = "127.0.0.1"
    max_request_bytes: int = Field(
        default=10 * 1024 * 1024,
        ge=1024,
        description="a request body over this many bytes is refused (413) before it is parsed; "
        "the default lets a report with 5 MB of attachments (base64) and its narrative through",
    )

    service_name: str = "service"

    @property
    def database(self) -> str:
        return self.mongo_db or self.service_name

    @model_validator(mode="after")
    def _refuse_development_defaults_in_production(self) -> ServiceSettings:
        if self.env is Environment.production:
            problems = []
            if self.admin_password.get_secret_value() == DEV_ADMIN_PASSWORD:
                problems.append("ADMIN_PASSWORD is the development default")
            if self.admin_username == DEV_ADMIN_USERNAME and not self.admin_password:
                problems.append("ADMIN_USERNAME/ADMIN_PASSWORD are not set")
            if self.jwt_secret.get_secret_value() == DEV_JWT_SECRET:
                problems.append("JWT_SECRET is the development default")
            if len(self.jwt_secret.get_secret_value()) < 32:
                problems.append("JWT_SECRET must be at least 32 characters")
            if "guest:guest@" in self.rabbit_url:
                problems.append("RABBIT_URL uses the guest account")
            if problems:
                raise ValueError("refused in ENV=production: " + "; ".join(problems))
        return self

    def parsed_api_keys(self) -> dict[str, tuple[str, str]]:
        """key → (system name, unit_id)."""
        out: dict[str, tuple[str, str]] = {}
        for item in filter(None, (p.strip() for p in self.api_keys.split(","))):
            name, unit_id, key = item.split(":", 2)
            out[key] = (name, unit_id)
        return out

"""Portal settings: the shared base, the portal's port, where the other services answer, and the
secret that signs the session cookie."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr, model_validator

from lhpn_shared.settings import Environment, ServiceSettings

DEV_SESSION_SECRET = "development-only-portal-session-secret"  # noqa: S105 - refused in production


class PortalSettings(ServiceSettings):
    service_name: str = "portal"
    uses_broker: ClassVar[bool] = False  # it talks to the services over HTTP only
    uses_database: ClassVar[bool] = False
    portal_port: int = 8000
    intake_url: str = "http://127.0.0.1:8001"
    cases_url: str = "http://127.0.0.1:8002"
    reminders_url: str = "http://127.0.0.1:8003"
    aggregation_url: str = "http://127.0.0.1:8004"
    session_secret: SecretStr = Field(
        default=SecretStr(DEV_SESSION_SECRET),
        description="signs the session cookie; at least 32 characters in production",
    )
    session_cookie: str = "lhpn_session"
    backend_timeout_seconds: float = Field(
        default=5.0, gt=0, description="how long a page waits for a service before saying so"
    )
    export_timeout_seconds: float = Field(
        default=60.0, gt=0, description="how long an .xlsx/.docx export or a sweep may take"
    )
    page_size: int = Field(default=20, ge=1, le=200)
    reference_cache_seconds: float = Field(
        default=60.0,
        ge=0,
        description="how long intake's plans and unit tree, as answered, serve further pages "
        "of the same role and unit (0: ask on every page)",
    )

    @property
    def secure_cookies(self) -> bool:
        """`Secure` cookies outside development (a browser sends them over HTTPS only)."""
        return self.env is not Environment.development

    def service_urls(self) -> dict[str, str]:
        return {
            "intake": self.intake_url.rstrip("/"),
            "cases": self.cases_url.rstrip("/"),
            "reminders": self.reminders_url.rstrip("/"),
            "aggregation": self.aggregation_url.rstrip("/"),
        }

    @model_validator(mode="after")
    def _refuse_development_session_secret(self) -> PortalSettings:
        if self.env is Environment.production:
            secret = self.session_secret.get_secret_value()
            if secret == DEV_SESSION_SECRET or len(secret) < 32:
                raise ValueError(
                    "refused in ENV=production: SESSION_SECRET must be set, at least 32 characters"
                )
        return self

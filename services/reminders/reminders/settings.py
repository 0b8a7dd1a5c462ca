"""Reminders settings: the shared base plus SMTP, the portal link, sweeps, retries, the policy.

The reminder policies are JSON in an environment variable, e.g.
`REMINDER_POLICY='{"by_report_type": {"monthly": [{"step": "due_day", "offset": "-P1D"},
{"step": "after_1d", "offset": "P1D"}]}}'` (offsets are ISO 8601 durations or seconds).
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from lhpn_shared.crypto import KeyConfigError, Keyring, holds_development_key
from lhpn_shared.settings import Environment, ServiceSettings

from .delivery.addresses import LOOPBACK, IPNetwork, parse_networks
from .delivery.email import SmtpConfig
from .delivery.retry import RetryPolicy
from .domain.case_deadlines import CaseReminderPolicy
from .domain.policy import ReminderPolicy

DEV_WEBHOOK_SECRET_KEYS = "dev:bGhwbi1yZW1pbmRlcnMtd2ViaG9vay1kZXYta2V5ISE="  # noqa: S105
"""A well-known key for development and tests; `ENV=production` refuses to start with it."""


class RemindersSettings(ServiceSettings):
    # a refused key setting must not be echoed (pydantic shows the input in its errors)
    model_config = SettingsConfigDict(hide_input_in_errors=True)

    service_name: str = "reminders"
    reminders_port: int = 8003

    smtp_from_address: str = "Hội LHPN <nhac-viec@lhpn.local>"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool | None = Field(
        default=None, description="true: require STARTTLS; false: never; unset: when offered"
    )
    smtp_use_tls: bool = Field(default=False, description="implicit TLS (usually port 465)")
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    webhook_secret_keys: SecretStr = Field(
        default=SecretStr(DEV_WEBHOOK_SECRET_KEYS),
        description="keys that seal the units' webhook secrets, as CASE_KEYS: "
        "'kid:base64(32 bytes),...'; the first seals, every one opens",
    )
    webhook_allowed_networks: str | None = Field(
        default=None,
        description="networks webhooks may reach although not public, e.g. '127.0.0.0/8,::1' "
        "(tests, development); unset: loopback in development, none in production",
    )

    portal_url: str = "http://127.0.0.1:8000"

    sweep_interval_seconds: float = Field(
        default=60.0, ge=0, description="the scheduler sweeps this often; 0: no scheduler"
    )
    delivery_poll_seconds: float = Field(default=1.0, gt=0)
    delivery_batch: int = Field(default=200, ge=1)
    delivery_concurrency: int = Field(default=10, ge=1)
    delivery_lease_seconds: float = Field(
        default=300.0, gt=0, description="how long a worker owns a delivery it is sending"
    )
    retry_base_seconds: float = Field(default=60.0, gt=0)
    retry_factor: float = Field(default=4.0, ge=1)
    retry_max_attempts: int = Field(default=5, ge=1)
    retry_cap_seconds: float = Field(default=6 * 3600.0, gt=0)

    reminder_policy: ReminderPolicy = Field(default_factory=ReminderPolicy)
    case_reminder_policy: CaseReminderPolicy = Field(default_factory=CaseReminderPolicy)

    @model_validator(mode="after")
    def _webhook_settings_are_usable(self) -> RemindersSettings:
        try:
            self.webhook_keyring()
        except KeyConfigError as exc:  # the message names the entry, never the key
            raise ValueError(f"WEBHOOK_SECRET_KEYS: {exc}") from None
        try:
            self.allowed_networks()
        except ValueError:
            raise ValueError(
                "WEBHOOK_ALLOWED_NETWORKS: list networks as '10.0.0.0/8,::1', comma-separated"
            ) from None
        return self

    def production_problems(self) -> list[str]:
        problems = super().production_problems()
        secret_keys = self.webhook_secret_keys.get_secret_value()
        if holds_development_key(secret_keys, DEV_WEBHOOK_SECRET_KEYS):
            problems.append("WEBHOOK_SECRET_KEYS holds the development key")
        return problems

    def webhook_keyring(self) -> Keyring:
        return Keyring.from_setting(self.webhook_secret_keys.get_secret_value())

    def allowed_networks(self) -> tuple[IPNetwork, ...]:
        """Where webhooks may go besides public addresses."""
        if self.webhook_allowed_networks is None:
            return LOOPBACK if self.env is Environment.development else ()
        return parse_networks(self.webhook_allowed_networks)

    def smtp_config(self) -> SmtpConfig:
        return SmtpConfig(
            host=self.smtp_host,
            port=self.smtp_port,
            from_address=self.smtp_from_address,
            username=self.smtp_username,
            password=self.smtp_password.get_secret_value() if self.smtp_password else None,
            start_tls=self.smtp_starttls,
            use_tls=self.smtp_use_tls,
            timeout=self.smtp_timeout_seconds,
        )

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            base=timedelta(seconds=self.retry_base_seconds),
            factor=self.retry_factor,
            max_attempts=self.retry_max_attempts,
            cap=timedelta(seconds=self.retry_cap_seconds),
        )

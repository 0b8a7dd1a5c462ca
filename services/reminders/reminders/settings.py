"""Reminders settings: the shared base plus SMTP, the portal link, sweeps, retries, the policy.

The reminder policies are JSON in an environment variable, e.g.
`REMINDER_POLICY='{"by_report_type": {"monthly": [{"step": "due_day", "offset": "-P1D"},
{"step": "after_1d", "offset": "P1D"}]}}'` (offsets are ISO 8601 durations or seconds).
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, SecretStr

from lhpn_shared.settings import ServiceSettings

from .delivery.email import SmtpConfig
from .delivery.retry import RetryPolicy
from .domain.case_deadlines import CaseReminderPolicy
from .domain.policy import ReminderPolicy


class RemindersSettings(ServiceSettings):
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

"""Intake settings: the shared base plus the intake port and its default data."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from lhpn_shared.settings import ServiceSettings

DATA_DIR = Path(__file__).parent / "data"


class IntakeSettings(ServiceSettings):
    service_name: str = "intake"
    intake_port: int = 8001
    seed_default_data: bool = True
    units_file: Path = DATA_DIR / "phu-yen-2021-units.csv"
    plan_files: list[Path] = Field(default_factory=lambda: [DATA_DIR / "plan-PY-2021-460.json"])
    max_attachment_bytes: int = 5 * 1024 * 1024
    sign_in_failures_per_user: int = Field(
        default=10, ge=1, description="failed sign-ins for one username before 429"
    )
    sign_in_failures_per_address: int = Field(
        default=100, ge=1, description="failed sign-ins from one client address before 429"
    )
    sign_in_window_seconds: int = Field(
        default=900, ge=1, description="how long failures count (and a lock lasts)"
    )
    password_hash_concurrency: int = Field(
        default=1,
        ge=1,
        description="argon2 hashes computed at once (64 MiB and one core each): 1 leaves the "
        "other core of a 2-core machine to everything else during a burst of sign-ins",
    )

    @model_validator(mode="after")
    def _a_report_with_its_attachments_fits_in_a_request(self) -> IntakeSettings:
        # attachments travel base64-encoded (4 bytes per 3) beside a narrative of up to
        # 200,000 characters (up to 4 bytes each in UTF-8) and the JSON around them
        needed = -(-self.max_attachment_bytes * 4 // 3) + 200_000 * 4 + 64 * 1024
        if self.max_request_bytes < needed:
            raise ValueError(
                f"MAX_REQUEST_BYTES ({self.max_request_bytes}) must be at least {needed} for a "
                f"report with MAX_ATTACHMENT_BYTES ({self.max_attachment_bytes}) of attachments"
            )
        return self

"""Intake settings: the shared base plus the intake port and its default data."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from lhpn_shared.settings import ServiceSettings

DATA_DIR = Path(__file__).parent / "data"


class IntakeSettings(ServiceSettings):
    service_name: str = "intake"
    intake_port: int = 8001
    seed_default_data: bool = True
    units_file: Path = DATA_DIR / "phu-yen-2021-units.csv"
    plan_files: list[Path] = Field(default_factory=lambda: [DATA_DIR / "plan-PY-2021-460.json"])
    max_attachment_bytes: int = 5 * 1024 * 1024

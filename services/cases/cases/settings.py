"""Cases settings: the shared base plus the port, the encryption keys and the deadline rules."""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from lhpn_shared.crypto import holds_development_key
from lhpn_shared.settings import ServiceSettings

from .adapters.crypto import FieldCipher, KeyConfigError
from .domain.deadlines import DeadlineConfig

DEV_CASE_KEYS = "dev:bGhwbi1jYXNlcy1kZXYtb25seS1rZXktY2hhbmdlISE="
"""A well-known key for development and tests; `ENV=production` refuses to start with it."""


class CasesSettings(ServiceSettings):
    # a refused setting must not be echoed (pydantic shows the input in its errors by default);
    # an empty variable (`CASE_KEYS=` in a copied .env) means "not set", not "no key"
    model_config = SettingsConfigDict(hide_input_in_errors=True, env_ignore_empty=True)

    service_name: str = "cases"
    cases_port: int = 8002
    case_keys: SecretStr = Field(
        default=SecretStr(DEV_CASE_KEYS),
        description="keys that seal the requester's data: 'kid:base64(32 bytes),...'; the first "
        "encrypts, every one decrypts (rotation)",
    )
    case_deadlines: DeadlineConfig = Field(
        default_factory=DeadlineConfig,
        description='deadline rules (JSON), e.g. {"kinds": {"petition": '
        '{"resolve_within_days": 15}}}; a kind given replaces its legal default, the other '
        "kinds keep theirs ({} for a kind: no deadline)",
    )
    units_refresh_seconds: float = Field(
        default=30.0, gt=0, description="how long the unit tree is cached between reloads"
    )

    @field_validator("case_deadlines", mode="before")
    @classmethod
    def _kinds_over_the_legal_defaults(cls, value: Any) -> Any:
        if isinstance(value, dict) and isinstance(value.get("kinds"), dict):
            legal = {
                kind.value: rules.model_dump() for kind, rules in DeadlineConfig().kinds.items()
            }
            value = {**value, "kinds": legal | value["kinds"]}
        return value

    @model_validator(mode="after")
    def _case_keys_are_usable(self) -> CasesSettings:
        try:
            self.cipher()
        except KeyConfigError as exc:  # the message names the entry, never the key
            raise ValueError(f"CASE_KEYS: {exc}") from None
        return self

    def production_problems(self) -> list[str]:
        problems = super().production_problems()
        if holds_development_key(self.case_keys.get_secret_value(), DEV_CASE_KEYS):
            problems.append("CASE_KEYS holds the development key")
        return problems

    def cipher(self) -> FieldCipher:
        return FieldCipher.from_setting(self.case_keys.get_secret_value())

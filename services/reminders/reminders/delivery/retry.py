"""When to try a failed delivery again (SPEC §7): exponential backoff, then `failed`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

DEFAULT_BASE = timedelta(minutes=1)
DEFAULT_FACTOR = 4.0
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_CAP = timedelta(hours=6)


def next_attempt_at(
    attempts: int,
    now: datetime,
    *,
    base: timedelta = DEFAULT_BASE,
    factor: float = DEFAULT_FACTOR,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    cap: timedelta = DEFAULT_CAP,
) -> datetime | None:
    """After `attempts` failed attempts (≥ 1), when to try again; None: give up, it failed.

    Defaults: 1 min, 4 min, 16 min, 64 min, then failed after the 5th attempt.
    """
    if attempts < 1:
        raise ValueError("attempts counts the attempts made so far, at least 1")
    if attempts >= max_attempts:
        return None
    return now + min(base * factor ** (attempts - 1), cap)


@dataclass(frozen=True)
class RetryPolicy:
    """The backoff options, as configured; `next_attempt_at` with them."""

    base: timedelta = DEFAULT_BASE
    factor: float = DEFAULT_FACTOR
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    cap: timedelta = DEFAULT_CAP

    def next_attempt_at(self, attempts: int, now: datetime) -> datetime | None:
        return next_attempt_at(
            attempts,
            now,
            base=self.base,
            factor=self.factor,
            max_attempts=self.max_attempts,
            cap=self.cap,
        )

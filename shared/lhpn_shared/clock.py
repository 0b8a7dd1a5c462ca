"""Time comes from an injected clock (STYLE principle 4): never call now() in domain code."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware (UTC)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock for tests and 'as of' runs: it moves only when told to."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FixedClock needs a timezone-aware instant")
        self._at = at.astimezone(UTC)

    def now(self) -> datetime:
        return self._at

    def set(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FixedClock needs a timezone-aware instant")
        self._at = at.astimezone(UTC)

    def advance(self, delta: timedelta) -> None:
        self._at += delta


def local_date(at: datetime) -> datetime:
    """The instant shown in Asia/Ho_Chi_Minh."""
    return at.astimezone(LOCAL_TZ)


def ensure_aware(at: datetime) -> datetime:
    """Mongo returns naive UTC datetimes unless the client is tz-aware; normalise either way."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def to_millis(at: datetime) -> datetime:
    """BSON dates keep milliseconds: truncate before storing so what we return is what we keep."""
    return at.replace(microsecond=at.microsecond // 1000 * 1000)

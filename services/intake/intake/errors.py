"""Intake's use-case errors, each answered with its own status (see `app.py`)."""

from __future__ import annotations


class NotFound(Exception):
    pass


class StaleRevision(Exception):
    """An inbound correction older than (or as old as) the stored revision: nothing to do."""


class Conflict(Exception):
    pass


class NotReady(Exception):
    """The unit tree is not loaded yet (database unreachable since start)."""

    def __str__(self) -> str:
        return "Dịch vụ đang khởi động, vui lòng thử lại sau ít giây."

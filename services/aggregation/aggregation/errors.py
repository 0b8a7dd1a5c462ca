"""The failures the use cases report, mapped to answers by the app."""

from __future__ import annotations


class NotFound(Exception):
    """An unknown plan, unit or schedule period: 404 with this message."""


class BadInput(Exception):
    """A parameter that cannot be answered (a bad period, an instant without time zone): 422."""


class Rebuilding(Exception):
    """`rebuild` is replaying the archive: batches wait (their messages are requeued)."""

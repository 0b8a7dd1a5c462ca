"""Structured logging: one JSON object per line, ids as fields, never personal data.

Every line written while a request or an event is handled carries its `correlation_id`
(`lhpn_shared.correlation`), so one event can be followed through every service.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from . import correlation

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "color_message",
}


def _field(value: Any) -> Any:
    """A record's extra field as JSON: lists and mappings stay arrays and objects (what reads
    the logs, e.g. `lhpn aggregation reroute`, gets the counts, not their text), their
    values that JSON has no type for as text, like any other value."""
    if isinstance(value, str | int | float | bool | None):
        return value
    if isinstance(value, list | tuple | dict):
        try:
            return json.loads(json.dumps(value, default=str, ensure_ascii=False))
        except (TypeError, ValueError):  # keys JSON cannot hold, a reference to itself
            return str(value)
    return str(value)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                out[key] = _field(value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


class CorrelationFilter(logging.Filter):
    """Puts the current correlation id on each record (as `correlation_id`) when it is written,
    in the context of the request or delivery that writes it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "correlation_id", None) is None:
            value = correlation.current()
            if value is not None:
                record.correlation_id = value
        return True


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    """JSON lines on `stream` (standard output by default; a command whose output is its
    result logs to standard error), each with the correlation id of the work in progress."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(CorrelationFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiormq", "aio_pika", "pymongo", "httpx", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

"""One JSON object per log line, with the job and task a line concerns.

`bind(job_id=..., task_id=...)` sets context for the current thread or task; every line logged
afterwards carries it, so one job can be followed from upload to email with one grep.
"""

from __future__ import annotations

import logging
import os
import sys
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

_context: ContextVar[dict[str, object]] = ContextVar("log_context", default={})  # noqa: B039


def bind(**fields: object) -> None:
    """Add fields to every following line of this context; a None value removes the field."""
    current = dict(_context.get())
    for key, value in fields.items():
        if value is None:
            current.pop(key, None)
        else:
            current[key] = str(value) if key.endswith("_id") else value
    _context.set(current)


class ContextFilter(logging.Filter):
    """Copy the bound context onto each record (fields given in `extra` win)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


def formatter() -> logging.Formatter:
    return JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        json_default=str,
    )


def configure(logger: logging.Logger | None = None) -> None:
    """Send the logger's (default: root's) lines to stderr as JSON, at LOG_LEVEL."""
    logger = logger or logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter())
    handler.addFilter(ContextFilter())
    for old in list(logger.handlers):
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.setLevel(os.environ.get("LOG_LEVEL", "INFO").upper())

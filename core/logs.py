"""One JSON object per log line, with the job and task a line concerns.

`bind(job_id=..., task_id=...)` sets context for the current thread or task; every line logged
afterwards carries it, so one job can be followed from upload to email with one grep. Celery's
own lines about a task ("received", "succeeded") carry the task in `record.data` instead: the
filter below takes `task_id` from there, and `job_id` from the task id, which tasks/pipeline.py
derives from the job id (`<job_id>-convert`, `<job_id>-notify`).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

_context: ContextVar[dict[str, object]] = ContextVar("log_context", default={})  # noqa: B039

#: A task id that starts with a job id (an ObjectId in hex) names that job.
_JOB_TASK_ID = re.compile(r"^([0-9a-f]{24})-")


def bind(**fields: object) -> None:
    """Add fields to every following line of this context; a None value removes the field."""
    current = dict(_context.get())
    for key, value in fields.items():
        if value is None:
            current.pop(key, None)
        else:
            current[key] = str(value) if key.endswith("_id") else value
    _context.set(current)


def clear() -> None:
    """Forget every bound field: a pooled thread starts each request or task afresh."""
    _context.set({})


def bound() -> dict[str, object]:
    """Return a copy of the fields bound in this context."""
    return dict(_context.get())


def job_id_of_task(task_id: object) -> str | None:
    """Return the job id a task id was derived from, or None."""
    found = _JOB_TASK_ID.match(str(task_id or ""))
    return found.group(1) if found else None


class ContextFilter(logging.Filter):
    """Copy the bound context onto each record (fields given in `extra` win)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        data = getattr(record, "data", None)
        if isinstance(data, dict) and data.get("id") and not hasattr(record, "task_id"):
            # Celery's worker lines: `extra={"data": {"id": ..., "name": ..., ...}}`.
            record.task_id = str(data["id"])
        if not hasattr(record, "job_id"):
            job_id = job_id_of_task(getattr(record, "task_id", None))
            if job_id:
                record.job_id = job_id
        return True


def formatter() -> logging.Formatter:
    """Return the JSON formatter of every process of the service."""
    return JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger", "process": "pid"},
        json_default=str,
    )


def handler(stream=None) -> logging.Handler:  # type: ignore[no-untyped-def]
    """Return a handler writing JSON lines, with the bound context, to stderr (or `stream`)."""
    result = logging.StreamHandler(stream or sys.stderr)
    result.setFormatter(formatter())
    result.addFilter(ContextFilter())
    return result


def configure(logger: logging.Logger | None = None, level: str | int | None = None) -> None:
    """Send the logger's (default: root's) lines to stderr as JSON, at `level` or LOG_LEVEL."""
    logger = logger or logging.getLogger()
    for old in list(logger.handlers):
        logger.removeHandler(old)
    logger.addHandler(handler())
    if level is None:
        level = os.environ.get("LOG_LEVEL", "INFO")
    logger.setLevel(level.upper() if isinstance(level, str) else level)


def capture_warnings() -> None:
    """Log Python's warnings (as JSON lines) instead of printing them to stderr as text."""
    logging.captureWarnings(True)

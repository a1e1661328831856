"""Print jobs: a table on a terminal, tab-separated lines in a pipe, or the server's JSON."""

from __future__ import annotations

import json
import sys
from datetime import datetime

from rich.console import Console
from rich.filesize import decimal
from rich.table import Table

STYLES = {"done": "green", "failed": "red", "cancelled": "yellow", "converting": "cyan"}


def _when(stamp: str | None) -> str:
    """Return an ISO time from the server in the local time zone, to the minute."""
    if not stamp:
        return ""
    try:
        return (
            datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            .astimezone()
            .strftime("%Y-%m-%d %H:%M")
        )
    except ValueError:
        return stamp


def _state(job: dict) -> str:
    if job["status"] == "converting":
        return f"converting {job.get('progress') or 0} %"
    return str(job["status"])


def print_jobs(answer: dict, *, as_json: bool = False) -> None:
    """Print one page of jobs."""
    if as_json:
        print(json.dumps(answer, indent=2))
        return
    found = answer.get("jobs", [])
    if not sys.stdout.isatty():
        for job in found:
            fields = [job["id"], _state(job), _when(job.get("created_at")), job["filename"]]
            print("\t".join(fields))
        return
    table = Table(box=None, header_style="bold")
    for column in ("ID", "STATUS", "CREATED", "FILE"):
        table.add_column(column, no_wrap=column != "FILE")
    for job in found:
        style = STYLES.get(job["status"], "")
        table.add_row(
            job["id"],
            f"[{style}]{_state(job)}[/]" if style else _state(job),
            _when(job.get("created_at")),
            job["filename"],
        )
    console = Console()
    console.print(table if found else "no jobs yet: mp3c convert FILE --wait")
    if answer.get("next"):
        console.print(f"({answer['total']} in all; more with --page {answer['page'] + 1})")


def print_job(job: dict, *, as_json: bool = False) -> None:
    """Print one job, a field a line."""
    if as_json:
        print(json.dumps(job, indent=2))
        return
    lines = [
        ("id", job["id"]),
        ("file", job["filename"]),
        ("status", _state(job)),
        ("created", _when(job.get("created_at"))),
        ("updated", _when(job.get("updated_at"))),
    ]
    if job.get("error"):
        lines.append(("error", job["error"]))
    mp3 = job.get("mp3")
    if mp3:
        lines.append(("mp3", f"{mp3['duration_seconds']:.1f} s, {decimal(mp3['bytes'])}"))
        lines.append(("url", mp3["url"]))
    for key, value in lines:
        print(f"{key:<8} {value}")

"""The progress display of `mp3c convert`: a row per file, from upload to conversion to download."""

from __future__ import annotations

import time

from rich.console import Console
from rich.filesize import decimal
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
)
from rich.text import Text

UPLOAD, QUEUED, CONVERT, DOWNLOAD = "upload", "queued", "convert", "download"


class AmountColumn(ProgressColumn):
    """Bytes during transfers, percent during the conversion, the outcome at the end."""

    def render(self, task: Task) -> Text:
        note = task.fields.get("note")
        if note:
            return Text(note, style=task.fields.get("style", ""))
        if task.fields.get("phase") in (QUEUED, CONVERT):
            return Text(f"{task.completed:3.0f} %")
        total = decimal(int(task.total)) if task.total is not None else "?"
        speed = f" {decimal(int(task.speed))}/s" if task.speed else ""
        return Text(f"{decimal(int(task.completed))} / {total}{speed}")


class ElapsedColumn(ProgressColumn):
    """Time since the file's upload began, frozen when its run ends."""

    def render(self, task: Task) -> Text:
        seconds = int(task.fields.get("ended", time.monotonic()) - task.fields["began"])
        return Text(f"{seconds // 60}:{seconds % 60:02d}", style="progress.elapsed")


def make_progress(console: Console) -> Progress:
    """Return the display, drawn on `console` (stderr: stdout is kept for results)."""
    return Progress(
        TextColumn("[bold]{task.description}", justify="left"),
        TextColumn("{task.fields[phase]:>8}"),
        BarColumn(bar_width=30),
        AmountColumn(),
        ElapsedColumn(),
        console=console,
        refresh_per_second=8,
    )


class Row:
    """One file's row of the display."""

    def __init__(self, progress: Progress, label: str) -> None:
        self.progress = progress
        self.task = progress.add_task(
            label, total=None, phase="waiting", note="", style="", began=time.monotonic()
        )

    def _fields(self) -> dict:
        return next(t.fields for t in self.progress.tasks if t.id == self.task)

    def phase(self, name: str, total: float | None) -> None:
        """Start a phase: its bar restarts from zero."""
        # reset() replaces the fields, so the ones to keep go with it.
        self.progress.reset(self.task, total=total, **{**self._fields(), "phase": name})

    def at(self, completed: float) -> None:
        self.progress.update(self.task, completed=completed)

    def finish(self, note: str, *, failed: bool = False) -> None:
        """Show how the file's run ended, and stop its clock."""
        task = next(t for t in self.progress.tasks if t.id == self.task)
        completed = task.completed if failed else (task.total or task.completed)
        self.progress.update(
            self.task,
            completed=completed,
            note=note,
            style="red" if failed else "green",
            ended=time.monotonic(),
        )
        self.progress.stop_task(self.task)

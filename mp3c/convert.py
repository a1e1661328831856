"""`mp3c convert`: upload each file, follow its conversion, download its MP3; files in parallel."""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from mp3c.api import EXIT_USAGE, Api, CliError, attachment_name
from mp3c.progress import CONVERT, DOWNLOAD, QUEUED, UPLOAD, Row, make_progress

#: Seconds between two looks at a job that is converting.
POLL_EVERY = 0.5
#: Uploads and downloads that run at the same time; the conversions all go on in parallel.
MAX_TRANSFERS = 4


@dataclass
class Outcome:
    """How one file fared."""

    path: Path
    job_id: str = ""
    saved: Path | None = None
    error: CliError | None = None


@dataclass
class Names:
    """The output files of this run, so that two videos named alike do not write one MP3."""

    taken: set[Path] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def claim(self, path: Path) -> Path:
        with self.lock:
            candidate, n = path, 1
            while candidate in self.taken:
                n += 1
                candidate = path.with_name(f"{path.stem} ({n}){path.suffix}")
            self.taken.add(candidate)
            return candidate


def mp3_name(filename: str) -> str:
    """Return the MP3's name for a video's name (`talk.mp4` → `talk.mp3`)."""
    return f"{Path(filename).stem or 'audio'}.mp3"


def save_mp3(api: Api, job: dict, target: Path, names: Names, row: Row | None = None) -> Path:
    """Stream the job's MP3 into `target` (a folder, or a file name) and return the file."""
    with api.mp3(job["id"]) as response:
        if target.is_dir():
            name = attachment_name(response) or mp3_name(job.get("filename", job["id"]))
            target = names.claim(target / name)
        total = int(response.headers.get("Content-Length") or 0) or None
        if row is not None:
            row.phase(DOWNLOAD, total)
        partial = target.with_name(target.name + ".part")
        try:
            with partial.open("wb") as fh:
                for block in response.iter_bytes():
                    fh.write(block)
                    if row is not None:
                        row.at(response.num_bytes_downloaded)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
    return target


def follow(api: Api, job_id: str, row: Row) -> dict:
    """Show the job's progress until it ends; return it done, or raise CliError."""
    shown = ""
    while True:
        job = api.job(job_id)
        phase = QUEUED if job["status"] == "queued" else CONVERT
        if phase != shown:
            row.phase(phase, 100)
            shown = phase
        row.at(job.get("progress") or 0)
        if job["status"] == "done":
            return job
        if job["status"] == "failed":
            raise CliError(f"the conversion failed: {job.get('error') or 'no reason given'}")
        if job["status"] == "cancelled":
            raise CliError("the job was cancelled")
        time.sleep(POLL_EVERY)


class Run:
    """Convert several files at once, one thread and one progress row each."""

    def __init__(self, api: Api, fields: dict[str, str], wait: bool, out_dir: Path) -> None:
        self.api, self.fields, self.wait, self.out_dir = api, fields, wait, out_dir
        self.transfers = threading.Semaphore(MAX_TRANSFERS)
        self.names = Names()

    def one(self, outcome: Outcome, row: Row) -> None:
        try:
            with self.transfers:
                row.phase(UPLOAD, outcome.path.stat().st_size)
                outcome.job_id = self.api.upload(outcome.path, self.fields, row.at)["job_id"]
            if not self.wait:
                row.finish("uploaded")
                return
            job = follow(self.api, outcome.job_id, row)
            with self.transfers:
                outcome.saved = save_mp3(self.api, job, self.out_dir, self.names, row)
            row.finish(f"saved {outcome.saved.name}")
        except CliError as exc:
            outcome.error = exc
            row.finish(exc.message, failed=True)
        except OSError as exc:
            message = f"{exc.strerror or exc}: {exc.filename or outcome.path}"
            outcome.error = CliError(message, EXIT_USAGE)
            row.finish(outcome.error.message, failed=True)

    def all(self, paths: list[Path], err: Console) -> list[Outcome]:
        """Run every file to its end and return the outcomes, in the order of `paths`."""
        outcomes = [Outcome(path) for path in paths]
        with make_progress(err) as progress:
            threads = [
                threading.Thread(target=self.one, args=(o, Row(progress, o.path.name)), daemon=True)
                for o in outcomes
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                # Joined in short steps, so that Ctrl-C reaches the main thread at once.
                while thread.is_alive():
                    thread.join(0.2)
        return outcomes


def report(outcomes: list[Outcome]) -> int:
    """Print one line per file; return the exit code of the first failure, or 0."""
    code = 0
    for outcome in outcomes:
        name = outcome.path.name
        if outcome.error is not None:
            print(f"mp3c: {name}: {outcome.error.message}", file=sys.stderr)
            code = code or outcome.error.exit_code
        elif outcome.saved is not None:
            print(f"{name} -> {outcome.saved}")
        else:
            job_id = outcome.job_id
            print(f"{name} -> job {job_id} (queued; follow it: mp3c status {job_id})")
    return code

"""Sample a running process with py-spy and say where its time went, by the service's own functions.

py-spy writes "frame;frame;… count" lines (`--format raw`). Each sample is charged to the innermost
frame that lies in the service's code (app/, core/, tasks/), and, within it, to the innermost frame
of all (what it was really doing: a socket read, a BSON decode, waiting on ffmpeg). With `--idle`
the samples cover wall time, waiting included; without it only time on the CPU.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

PY_SPY = Path(sys.executable).with_name("py-spy")
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
# py-spy names files relative to sys.path: the service's own are app/…, core/…, tasks/….
_OURS = re.compile(r"^(app|core|tasks)/.+\.py$|^celeryconfig\.py$")


class Recorder:
    """`py-spy record` on a pid until stopped; raw output to `out`."""

    def __init__(
        self, pid: int, out: Path, *, idle: bool, subprocesses: bool = False, rate: int = 200
    ) -> None:
        self.out = out
        argv = [
            str(PY_SPY),
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--output",
            str(out),
            "--rate",
            str(rate),
            "--nonblocking",
        ]
        if idle:
            argv.append("--idle")
        if subprocesses:
            argv.append("--subprocesses")
        self.log = out.with_suffix(".log")
        self.proc = subprocess.Popen(argv, stdout=self.log.open("wb"), stderr=subprocess.STDOUT)

    def stop(self) -> Path | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.out if self.out.exists() else None


def _frames(stack: str) -> list[tuple[str, str]]:
    result = []
    for frame in stack.split(";"):
        match = _FRAME.match(frame.strip())
        if match:
            result.append((match["func"], match["file"]))
        else:
            result.append((frame.strip(), ""))
    return result


def _short(file: str) -> str:
    for marker in ("site-packages/", "lib/python3."):
        if marker in file:
            file = file.split(marker, 1)[1]
            if marker.startswith("lib/"):
                file = file.split("/", 1)[-1]
    return file


def summarize(raw: Path, *, top: int = 12, within: str | None = None) -> dict:
    """Return {"samples", "ours": [(label, share, top leaf)], "leaves": [(label, share)]}.

    With `within`, only stacks with a frame whose function contains it are counted (a worker's
    task: `trace_task`; its other threads, heartbeats and pools, idle all the time).
    """
    ours: Counter[str] = Counter()
    ours_leaf: dict[str, Counter[str]] = {}
    leaves: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = _frames(stack)
        if not frames or (within and not any(within in func for func, _ in frames)):
            continue
        total += n
        leaf_func, leaf_file = frames[-1]
        leaf = f"{leaf_func} ({_short(leaf_file)})"
        leaves[leaf] += n
        mine = next(
            (f"{func} ({_short(file)})" for func, file in reversed(frames) if _OURS.search(file)),
            "(outside the service's code)",
        )
        ours[mine] += n
        ours_leaf.setdefault(mine, Counter())[leaf] += n
    if not total:
        return {"samples": 0, "ours": [], "leaves": []}
    return {
        "samples": total,
        "ours": [
            (label, n / total, ours_leaf[label].most_common(1)[0][0])
            for label, n in ours.most_common(top)
        ],
        "leaves": [(label, n / total) for label, n in leaves.most_common(top)],
    }

"""Measure processes: CPU time of a process tree, sampled peak memory, exact rusage of a child."""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import psutil

MB = 1024 * 1024


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_cpu(pids: int | Iterable[int]) -> float:
    """Return the CPU seconds (user + system) the trees under `pids` have used so far.

    A live process counts its own time and that of its children it has already reaped (ffmpeg
    and probe runs that ended); children still running are counted as processes of their own.
    """
    total = 0.0
    for pid in [pids] if isinstance(pids, int) else pids:
        for proc in _tree(pid):
            with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
                t = proc.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
    return total


def cpu_breakdown(pid: int) -> dict[str, float]:
    """Split a worker tree's CPU so far: main process, Python children, ffmpeg (and probes).

    Children that already ended are counted by their parent: the pool process's are its ffmpeg
    and probe runs; the main process's are pool processes that were replaced.
    """
    parts = {"main": 0.0, "pool": 0.0, "ffmpeg": 0.0}
    for i, proc in enumerate(_tree(pid)):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
            t = proc.cpu_times()
            own, reaped = t.user + t.system, t.children_user + t.children_system
            if i == 0:
                parts["main"] += own + reaped
            elif "ffmpeg" in proc.name():
                parts["ffmpeg"] += own + reaped
            else:
                parts["pool"] += own
                parts["ffmpeg"] += reaped
    return parts


def status_kb(pid: int, key: str) -> int:
    """Return a `VmHWM`/`VmRSS`-style field of /proc/PID/status in KiB (0 when gone)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


@dataclass
class Peak:
    """What a Sampler saw: peaks of the trees' summed PSS and RSS, and of each process and command.

    PSS shares each page among the processes that map it, so a forked pool process and its parent
    are not counted twice; a process's own peak is its VmHWM (RSS high-water mark since exec).
    """

    tree_bytes: int = 0  # PSS sum
    tree_rss: int = 0  # RSS sum
    by_name: dict[str, int] = field(default_factory=dict)  # VmHWM
    by_pid: dict[int, int] = field(default_factory=dict)  # VmHWM
    rss_by_pid: dict[int, int] = field(default_factory=dict)  # largest RSS seen while sampling
    samples: int = 0


class Sampler:
    """Sample the memory of the process trees under `pids` in a thread.

    RSS and VmHWM (cheap kernel counters) every `every` s; PSS every `pss_every` s, because
    reading it walks the page tables of each process under the lock its own page faults need:
    sampled every 50 ms over the worker's three processes, it slowed a 60 s job by 20 % (0.53 →
    0.65 s wall, 0.64 → 0.74 s CPU; bench/FINDINGS.md). Every measured path uses the same rates.
    """

    def __init__(self, pids: Sequence[int], every: float = 0.05, pss_every: float = 0.5) -> None:
        self.pids, self.every, self.pss_every = list(pids), every, pss_every
        self.peak = Peak()
        self._last_pss = float("-inf")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def _sample(self, *, with_pss: bool | None = None) -> None:
        if with_pss is None:
            with_pss = time.monotonic() - self._last_pss >= self.pss_every
        if with_pss:
            self._last_pss = time.monotonic()
        pss = rss = 0
        for pid in self.pids:
            for proc in _tree(pid):
                with contextlib.suppress(
                    psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied
                ):
                    info = proc.memory_full_info() if with_pss else proc.memory_info()
                    rss += info.rss
                    if with_pss:
                        pss += info.pss
                    own = max(info.rss, status_kb(proc.pid, "VmHWM") * 1024)
                    name = proc.name()
                    self.peak.by_name[name] = max(self.peak.by_name.get(name, 0), own)
                    self.peak.by_pid[proc.pid] = max(self.peak.by_pid.get(proc.pid, 0), own)
                    self.peak.rss_by_pid[proc.pid] = max(
                        self.peak.rss_by_pid.get(proc.pid, 0), info.rss
                    )
        if with_pss:
            self.peak.tree_bytes = max(self.peak.tree_bytes, pss)
        self.peak.tree_rss = max(self.peak.tree_rss, rss)
        self.peak.samples += 1

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.every)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample(with_pss=True)


@dataclass
class ChildRun:
    """One child process run to its end: wall time, CPU time and peak RSS, from wait4."""

    wall: float
    cpu: float
    peak: int  # bytes; the largest VmHWM seen in the child's tree (sampled)
    tree_peak: int  # bytes; the largest PSS sum of the child's tree (sampled)
    returncode: int


def run_child(argv: Sequence[str], *, every: float = 0.05, **popen: object) -> ChildRun:
    """Run `argv` to its end and return its rusage (it and every descendant it reaped).

    Memory comes from sampling, not from rusage: `ru_maxrss` of a child counts the RSS of the
    forked copy of this process before exec, which would add this benchmark's own size to ffmpeg's.
    """
    popen.setdefault("stdout", subprocess.DEVNULL)
    popen.setdefault("stdin", subprocess.DEVNULL)
    started = time.perf_counter()
    proc = subprocess.Popen(list(argv), **popen)  # type: ignore[call-overload]
    sampler = Sampler([proc.pid], every=every).__enter__()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    sampler.__exit__()
    return ChildRun(
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        peak=max(sampler.peak.by_pid.values(), default=0),
        tree_peak=sampler.peak.tree_bytes,
        returncode=proc.returncode,
    )


def median(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")

"""Tripwires for ffmpeg: a loopback server, a watched file, and a system-call trace of the worker.

Each hostile upload references the canary server's port and the canary file. If any ffmpeg ever
follows such a reference, the server sees a connection (TCP) or a datagram (UDP), inotify sees
the file opened, and the trace shows the open() or connect() itself.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

# --- A TCP and UDP server on one loopback port that counts whoever comes --------------------------


class CanaryServer:
    """Accept TCP connections and UDP datagrams on one loopback port, and count them."""

    def __init__(self) -> None:
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.bind(("127.0.0.1", 0))
        self.port = self.tcp.getsockname()[1]
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", self.port))
        self.udp.settimeout(0.2)
        self.tcp.listen(16)
        self.tcp.settimeout(0.2)
        self.seen: list[str] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._serve_tcp, daemon=True),
            threading.Thread(target=self._serve_udp, daemon=True),
        ]

    def start(self) -> CanaryServer:
        for thread in self._threads:
            thread.start()
        return self

    def _serve_tcp(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self.tcp.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(1)
                with contextlib.suppress(OSError):
                    request = conn.recv(4096)
                    self.seen.append(f"tcp from {peer}: {request[:200]!r}")
                    conn.sendall(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n")

    def _serve_udp(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.udp.recvfrom(4096)
            except TimeoutError:
                continue
            self.seen.append(f"udp from {peer}: {data[:200]!r}")

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        self.tcp.close()
        self.udp.close()


# --- inotify: who opens the canary file ----------------------------------------------------------

_IN_ACCESS, _IN_OPEN = 0x001, 0x020
_EVENT = struct.Struct("iIII")


class FileWatch:
    """Count the times any process opens or reads a file (Linux inotify, whatever the mount)."""

    def __init__(self, path: Path) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        if self._libc.inotify_add_watch(self.fd, os.fsencode(path), _IN_OPEN | _IN_ACCESS) < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {path}")
        self.events = 0

    def count(self) -> int:
        """Return how many opens and reads were seen so far."""
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return self.events
            offset = 0
            while offset < len(data):
                _wd, _mask, _cookie, length = _EVENT.unpack_from(data, offset)
                offset += _EVENT.size + length
                self.events += 1

    def close(self) -> None:
        os.close(self.fd)


# --- strace of the worker: every file ffmpeg opens and every socket it makes ---------------------

#: Where the dynamic loader looks for libraries; ffmpeg's own opens are anything else.
_LOADER = ("/etc/ld.so.", "/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/", "/usr/local/lib/")
_LINE = re.compile(r"^(\d+) +(\w+)\((.*)")
_PATH = re.compile(r'^(?:AT_FDCWD, |\d+, )?"((?:[^"\\]|\\.)*)"')


@dataclass
class FfmpegRun:
    """What one ffmpeg process did, as the trace saw it."""

    pid: int
    argv: str
    opened: list[str] = field(default_factory=list)
    sockets: list[str] = field(default_factory=list)

    def foreign_files(self, allowed: re.Pattern[str]) -> list[str]:
        return [p for p in self.opened if not p.startswith(_LOADER) and not allowed.match(p)]


def _tracer_of(pid: int) -> int:
    """Return the pid of the process tracing `pid` (0 for none), from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("TracerPid:"):
            return int(line.split()[1])
    return 0


class Trace:
    """strace -f attached to the worker and its pool: a record of every ffmpeg it runs."""

    def __init__(self, pids: list[int], log: Path, ffmpeg: str) -> None:
        self.log, self.ffmpeg = log, os.path.basename(ffmpeg)
        argv = [
            shutil.which("strace") or "strace",
            "-f",
            "-qq",
            "-s",
            "4096",
            "-o",
            str(log),
            "-e",
            "trace=execve,open,openat,creat,connect,socket",
        ]
        for pid in pids:
            argv += ["-p", str(pid)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # strace writes nothing until a traced process makes a call: wait until the kernel
        # names it as every process's tracer, so that no ffmpeg started after this goes unseen.
        deadline = time.monotonic() + 30
        while not all(_tracer_of(pid) == self.proc.pid for pid in pids):
            if self.proc.poll() is not None:
                raise RuntimeError(f"strace could not attach: {self.proc.stderr.read().decode()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"strace did not attach to {pids} within 30 s")
            time.sleep(0.05)

    def stop(self) -> list[FfmpegRun]:
        """Detach from the worker (it goes on untouched) and return the ffmpeg runs seen."""
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        return self.runs()

    def runs(self) -> list[FfmpegRun]:
        runs: dict[int, FfmpegRun] = {}
        for line in self.log.read_text(errors="replace").splitlines():
            match = _LINE.match(line)
            if not match:
                continue
            # `<... openat resumed>` lines do not match: the arguments were on the first half.
            pid, call, rest = int(match[1]), match[2], match[3]
            if call == "execve":
                path = _PATH.match(rest)
                if path and os.path.basename(path[1]) == self.ffmpeg:
                    runs[pid] = FfmpegRun(pid, rest[:300])
                else:
                    runs.pop(pid, None)
            elif pid in runs and call in ("open", "openat", "creat"):
                path = _PATH.match(rest)
                runs[pid].opened.append(path[1] if path else rest[:200])
            elif pid in runs and call in ("connect", "socket"):
                runs[pid].sockets.append(f"{call}({rest[:200]}")
        return list(runs.values())

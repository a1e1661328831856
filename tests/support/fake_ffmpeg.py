#!/usr/bin/env python3
"""An ffmpeg that misbehaves on marked inputs, for tests that break things on purpose.

It looks for `MP3TEST:<MODE>;` in the first 64 KiB of the input (the tests put it in the
video's title) and then: SLOW reads the input at its native rate, HANG never returns, CRASH dies
from SIGSEGV, KILLWORKER SIGKILLs the worker process that started it. Unmarked inputs run the real
ffmpeg unchanged.
"""

import os
import re
import signal
import sys
import time

import imageio_ffmpeg

REAL = imageio_ffmpeg.get_ffmpeg_exe()


def _head(url: str) -> bytes:
    """Return the input's first 64 KiB, waiting for them if the file is still being copied."""
    # The worker's input is `file:PATH`, or `subfile,,start,0,end,LENGTH,,:file:PATH` while the
    # copy out of GridFS still writes PATH (tasks/ffmpeg.py `_input`).
    growing = re.fullmatch(r"subfile,,start,0,end,(\d+),,:file:(.*)", url, re.DOTALL)
    path = growing.group(2) if growing else url.removeprefix("file:")
    want = min(65536, int(growing.group(1))) if growing else 65536
    deadline = time.monotonic() + 30
    while True:
        with open(path, "rb") as fh:
            head = fh.read(65536)
        if not growing or len(head) >= want or time.monotonic() > deadline:
            return head
        time.sleep(0.01)


def _mode(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv[:-1]):
        if arg == "-i":
            try:
                found = re.search(rb"MP3TEST:([A-Z]+);", _head(argv[i + 1]))
            except OSError:
                return None
            return found.group(1).decode() if found else None
    return None


def main() -> None:
    argv = sys.argv[1:]
    mode = _mode(argv)
    converting = "-progress" in argv
    if mode == "SLOW" and converting:
        argv.insert(argv.index("-i"), "-re")
    elif mode == "HANG" and converting:
        while True:
            time.sleep(60)
    elif mode == "CRASH" and converting:
        os.kill(os.getpid(), signal.SIGSEGV)
    elif mode == "KILLWORKER" and converting:
        os.kill(os.getppid(), signal.SIGKILL)
        time.sleep(5)
        sys.exit(1)
    os.execv(REAL, [REAL, *argv])  # noqa: S606 - replaces this process with the real ffmpeg


if __name__ == "__main__":
    main()

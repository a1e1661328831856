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


def _mode(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv[:-1]):
        if arg == "-i":
            path = argv[i + 1].removeprefix("file:")
            try:
                with open(path, "rb") as fh:
                    found = re.search(rb"MP3TEST:([A-Z]+);", fh.read(65536))
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

"""(b) The course's converter: `VideoFileClip(path).audio.write_audiofile(out)`, in a process.

Run as `python -m bench.moviepy_job SRC DST RATE`. moviepy is imported before the clock starts (the
course's consumer imports it once and converts many videos); the conversion's CPU is this
process's plus every ffmpeg it started, reaped or still alive (moviepy leaves the video reader's
ffmpeg running until the clip is closed). The output settings are the service's: LAME VBR
`-q:a 4` at the source's sample rate, so (b) and (a) differ in the way of working, not in the
MP3 they write. One JSON line goes to stdout.
"""

from __future__ import annotations

import json
import resource
import sys
import time

import psutil
from moviepy import VideoFileClip


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + reaped.ru_utime + reaped.ru_stime


def _live_children_cpu() -> float:
    total = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            t = child.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def _hwm() -> int:
    # VmHWM, not ru_maxrss: the latter also counts the parent's image this process was forked from.
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def main() -> None:
    src, dst, rate = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(src, "rb"):
        pass  # fail here, not inside moviepy, when the input is missing
    rss_imported = psutil.Process().memory_info().rss
    cpu0, started = _cpu(), time.perf_counter()
    clip = VideoFileClip(src, audio_fps=rate)
    # The course's call; the result line goes to stdout, moviepy's progress bar stays (stderr).
    clip.audio.write_audiofile(dst, ffmpeg_params=["-q:a", "4"])
    wall = time.perf_counter() - started
    cpu = _cpu() + _live_children_cpu() - cpu0
    clip.close()
    print(
        json.dumps(
            {"wall": wall, "cpu": cpu, "python_hwm": _hwm(), "rss_after_import": rss_imported}
        )
    )


if __name__ == "__main__":
    main()

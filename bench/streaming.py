"""Experiment: ffmpeg reading the video from GridFS while it is copied, three ways.

`sequential` is how the worker ran until the fourth pass: the whole video copied from GridFS to a
temporary file, then ffmpeg on the file, so the copy's time added to every job. `streamed`
writes the GridFS chunks into ffmpeg's stdin from a thread; an MP4 whose `moov` sits at the end
cannot be read from a pipe (ffmpeg exits 0 with a near-empty output, see DESIGN.md), so it is
sent as ftyp, then the moov with its chunk offsets (stco/co64) moved by the moov's size, then
the media data: an on-the-fly "faststart". `followed` is the worker's way now
(tasks/video_copy.py): the copy writes the temporary file in that same order, and ffmpeg reads
the file as it grows (`-follow 1` under `subfile`, which gives ffmpeg the final size), seeking
past the video it does not need. Nothing is re-encoded and the MP3s are byte-identical.

This module measures them on the same bytes with raw pymongo and the service's ffmpeg command.
"""

from __future__ import annotations

import contextlib
import fcntl
import resource
import subprocess
import threading
import time
from pathlib import Path

from bench.procs import MB

F_SETPIPE_SZ = 1031


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _cpu_since(cpu0: float, children0: resource.struct_rusage) -> float:
    """CPU of this process and its finished children since `cpu0` and `children0`."""
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (
        _self_cpu()
        - cpu0
        + (children1.ru_utime - children0.ru_utime)
        + (children1.ru_stime - children0.ru_stime)
    )


def sequential(bucket, oid, argv_for, workdir: Path) -> dict:  # type: ignore[no-untyped-def]
    """The worker's way before the fourth pass: copy GridFS → temporary file, then ffmpeg."""
    from core import mongo

    src, dst = workdir / "seq-video", workdir / "seq.mp3"
    started, cpu0 = time.perf_counter(), _self_cpu()
    copy0 = time.perf_counter()
    database, name = bucket._chunks.database, bucket._collection.name
    with bucket.open_download_stream(oid) as grid_out, src.open("wb") as target:
        for chunk in mongo.iter_chunks(database, name, grid_out):
            target.write(chunk)
    copy_s = time.perf_counter() - copy0
    copy_cpu = _self_cpu() - cpu0
    usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    # The service's command logs at `info`; both ways keep it out of the benchmark's output.
    subprocess.run(
        argv_for(f"file:{src}", dst),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    usage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter() - started
    ff_cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    src.unlink()
    return {"wall": wall, "copy_s": copy_s, "cpu": copy_cpu + ff_cpu, "out": dst.read_bytes()}


def followed(bucket, oid, argv_for, workdir: Path) -> dict:  # type: ignore[no-untyped-def]
    """The worker's way: ffmpeg reads the temporary file while the copy still writes it."""
    from tasks.video_copy import VideoCopy

    src, dst = workdir / "fol-video", workdir / "fol.mp3"
    started, cpu0 = time.perf_counter(), _self_cpu()
    usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    database = bucket._chunks.database
    with VideoCopy(database, oid, src, bucket_name=bucket._collection.name) as copy:
        code = subprocess.run(
            argv_for(f"file:{src}", dst, length=copy.length),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ).returncode
        copy.wait()
    wall, cpu = time.perf_counter() - started, _cpu_since(cpu0, usage0)
    if code != 0:
        raise RuntimeError(f"followed ffmpeg exited {code}")
    src.unlink()
    return {"wall": wall, "cpu": cpu, "out": dst.read_bytes(), "reordered": copy.reordered}


def streamed(bucket, oid, argv_for, workdir: Path) -> dict:  # type: ignore[no-untyped-def]
    """GridFS chunks written into ffmpeg's stdin by a thread while ffmpeg converts."""
    from core import mongo
    from tasks import faststart
    from tasks.video_copy import chunk_reader

    dst = workdir / "stream.mp3"
    started, cpu0 = time.perf_counter(), _self_cpu()
    usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    database, name = bucket._chunks.database, bucket._collection.name
    grid_out = bucket.open_download_stream(oid)
    layout = faststart.plan(chunk_reader(database, name, grid_out), grid_out.length)
    proc = subprocess.Popen(
        argv_for("pipe:0", dst),
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # A 1 MiB pipe (the default ceiling) instead of 64 KiB: 16 times fewer hand-overs between this
    # process and ffmpeg, each of which waits for a time slice on a busy machine.
    with contextlib.suppress(OSError):
        fcntl.fcntl(proc.stdin.fileno(), F_SETPIPE_SZ, MB)
    sent: list[int] = []

    def feed() -> None:
        try:
            for piece in faststart.reorder(layout, mongo.iter_chunks(database, name, grid_out)):
                proc.stdin.write(piece)
                sent.append(len(piece))
        except BrokenPipeError:
            pass
        finally:
            proc.stdin.close()

    writer = threading.Thread(target=feed)
    writer.start()
    code = proc.wait()
    writer.join()
    wall, cpu = time.perf_counter() - started, _cpu_since(cpu0, usage0)
    if code != 0:
        raise RuntimeError(f"streamed ffmpeg exited {code}")
    return {
        "wall": wall,
        "cpu": cpu,
        "out": dst.read_bytes(),
        "sent_mb": sum(sent) / MB,
        "reordered": layout is not None,
    }

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
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from bench.procs import MB

F_SETPIPE_SZ = 1031

#: Boxes whose children hold the chunk offset tables: moov/trak/mdia/minf/stbl.
_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf"}


class NotStreamable(Exception):
    """This file must be copied whole before ffmpeg can read it."""


def _boxes(read_at, start: int, end: int) -> Iterator[tuple[bytes, int, int, int]]:  # type: ignore[no-untyped-def]
    """Yield (type, offset, size, header size) of the boxes between `start` and `end`."""
    offset = start
    while offset + 8 <= end:
        head = read_at(offset, 16)
        size, kind = struct.unpack(">I4s", head[:8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", head[8:16])[0], 16
        elif size == 0:
            size = end - offset
        if size < header:
            raise NotStreamable(f"malformed box {kind!r} at {offset}")
        yield kind, offset, size, header
        offset += size


def _shift_offsets(moov: bytearray, delta: int) -> None:
    """Add `delta` to every chunk offset in the moov (in place); stco must stay 32-bit."""

    def walk(start: int, end: int) -> None:
        for kind, offset, size, header in _boxes(lambda o, n: bytes(moov[o : o + n]), start, end):
            body = offset + header
            if kind in _CONTAINERS:
                walk(body, offset + size)
            elif kind in (b"stco", b"co64"):
                (count,) = struct.unpack(">I", moov[body + 4 : body + 8])
                width, fmt = (4, ">I") if kind == b"stco" else (8, ">Q")
                for i in range(count):
                    at = body + 8 + i * width
                    (value,) = struct.unpack(fmt, moov[at : at + width])
                    if kind == b"stco" and value + delta >= 2**32:
                        raise NotStreamable("offsets would overflow stco; needs co64")
                    moov[at : at + width] = struct.pack(fmt, value + delta)

    _, _, size, header = next(_boxes(lambda o, n: bytes(moov[o : o + n]), 0, len(moov)))
    walk(header, size)


def _chunk_reader(chunks, grid_out):  # type: ignore[no-untyped-def]
    """Return read_at(offset, n) fetching single chunks by number.

    Not GridOut.seek + read: after a seek, GridOut opens a cursor over every following chunk, and
    its first batch brings up to 16 MB over the wire for a 16-byte box header.
    """
    size, cache = grid_out.chunk_size, {}

    def chunk(n: int) -> bytes:
        if n not in cache:
            doc = chunks.find_one({"files_id": grid_out._id, "n": n})
            cache[n] = bytes(doc["data"]) if doc else b""
        return cache[n]

    def read_at(offset: int, n: int) -> bytes:
        out = bytearray()
        while n > 0:
            index, skip = divmod(offset, size)
            piece = chunk(index)[skip : skip + n]
            if not piece:
                break
            out += piece
            offset, n = offset + len(piece), n - len(piece)
        return bytes(out)

    return read_at


def plan(grid_out, chunks) -> list[tuple[int, int] | bytes]:  # type: ignore[no-untyped-def]
    """Return the pieces to send, in order: (offset, size) ranges of the file, or bytes."""
    length = grid_out.length
    read_at = _chunk_reader(chunks, grid_out)

    head = read_at(0, 12)
    if head[4:8] not in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"):
        return [(0, length)]  # not an MP4/QuickTime file: Matroska, TS, … stream as they are
    boxes = list(_boxes(read_at, 0, length))
    kinds = [b[0] for b in boxes]
    if b"moov" not in kinds or b"mdat" not in kinds:
        raise NotStreamable("no moov or no mdat")
    moov_i, mdat_i = kinds.index(b"moov"), kinds.index(b"mdat")
    if moov_i < mdat_i:
        return [(0, length)]  # faststart already
    _, moov_off, moov_size, _ = boxes[moov_i]
    moov = bytearray(read_at(moov_off, moov_size))
    _shift_offsets(moov, moov_size)
    pieces: list[tuple[int, int] | bytes] = [(o, s) for _, o, s, _ in boxes[:mdat_i]]
    pieces.append(bytes(moov))
    pieces += [(o, s) for i, (_, o, s, _) in enumerate(boxes[mdat_i:], mdat_i) if i != moov_i]
    return pieces


def _send(grid_out, pieces, sink) -> int:  # type: ignore[no-untyped-def]
    sent = 0
    for piece in pieces:
        if isinstance(piece, bytes):
            sink.write(piece)
            sent += len(piece)
            continue
        offset, size = piece
        grid_out.seek(offset)
        while size > 0:
            chunk = grid_out.read(min(size, grid_out.chunk_size))
            if not chunk:
                break
            sink.write(chunk)
            sent += len(chunk)
            size -= len(chunk)
    return sent


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def sequential(bucket, oid, argv_for, workdir: Path) -> dict:  # type: ignore[no-untyped-def]
    """The service's way: copy GridFS → temporary file, then ffmpeg on the file."""
    from core import mongo

    src, dst = workdir / "seq-video", workdir / "seq.mp3"
    started, cpu0 = time.perf_counter(), _self_cpu()
    copy0 = time.perf_counter()
    mongo.copy_to_file(bucket._chunks.database, bucket._collection.name, oid, str(src))
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
    usage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"followed ffmpeg exited {code}")
    cpu = (
        _self_cpu()
        - cpu0
        + (usage1.ru_utime - usage0.ru_utime)
        + (usage1.ru_stime - usage0.ru_stime)
    )
    src.unlink()
    return {"wall": wall, "cpu": cpu, "out": dst.read_bytes(), "reordered": copy.reordered}


def streamed(bucket, oid, argv_for, workdir: Path) -> dict:  # type: ignore[no-untyped-def]
    """GridFS chunks written into ffmpeg's stdin by a thread while ffmpeg converts."""
    dst = workdir / "stream.mp3"
    started, cpu0 = time.perf_counter(), _self_cpu()
    usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    grid_out = bucket.open_download_stream(oid)
    pieces = plan(grid_out, bucket._chunks)
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
            sent.append(_send(grid_out, pieces, proc.stdin))
        except BrokenPipeError:
            pass
        finally:
            proc.stdin.close()

    writer = threading.Thread(target=feed)
    writer.start()
    code = proc.wait()
    writer.join()
    usage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"streamed ffmpeg exited {code}")
    cpu = (
        _self_cpu()
        - cpu0
        + (usage1.ru_utime - usage0.ru_utime)
        + (usage1.ru_stime - usage0.ru_stime)
    )
    return {
        "wall": wall,
        "cpu": cpu,
        "out": dst.read_bytes(),
        "sent_mb": sum(sent) / MB,
        "reordered": any(isinstance(p, bytes) for p in pieces),
    }

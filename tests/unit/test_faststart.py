"""An MP4 with its index at the end is written index-first, and converts to the same MP3."""

from __future__ import annotations

import hashlib
import random
import struct
import subprocess
from pathlib import Path

import pytest

from tasks import faststart
from tests.support.media import FFMPEG, make_video


def _reader(data: bytes):  # type: ignore[no-untyped-def]
    return lambda offset, n: data[offset : offset + n]


def _top_boxes(data: bytes) -> list[bytes]:
    kinds, offset = [], 0
    while offset < len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
        kinds.append(kind)
        offset += size
    return kinds


def _laid_out(data: bytes, sizes: list[int] | None = None) -> bytes:
    layout = faststart.plan(_reader(data), len(data))
    assert layout is not None
    chunks, at = [], 0
    for size in sizes or [1 << 20] * (len(data) // (1 << 20) + 1):
        chunks.append(data[at : at + size])
        at += size
    assert at >= len(data)
    return b"".join(bytes(piece) for piece in faststart.reorder(layout, chunks))


def _mp3_of(path: Path, out: Path) -> str:
    subprocess.run(
        [FFMPEG, "-v", "error", "-y", "-i", str(path), "-vn", "-c:a", "libmp3lame", str(out)],
        check=True,
    )
    return hashlib.sha256(out.read_bytes()).hexdigest()


@pytest.mark.parametrize("kind", ["mp4", "mov"])
def test_an_index_at_the_end_is_moved_first_and_converts_to_the_same_mp3(kind, tmp_path):
    video = make_video(tmp_path, kind, seconds=4)
    data = video.read_bytes()
    assert _top_boxes(data).index(b"moov") > _top_boxes(data).index(b"mdat")  # as ffmpeg writes

    # GridFS chunks of any size, cut anywhere (through a box header, through the moov).
    laid = _laid_out(data, sizes=[37, 4096, 1, 100_000, 3, 1 << 20])
    assert len(laid) == len(data)
    assert _top_boxes(laid).index(b"moov") < _top_boxes(laid).index(b"mdat")
    moved = tmp_path / f"moved.{kind}"
    moved.write_bytes(laid)
    assert _mp3_of(moved, tmp_path / "a.mp3") == _mp3_of(video, tmp_path / "b.mp3")


def test_files_that_need_no_moving_or_cannot_be_moved_are_copied_as_they_are(tmp_path):
    video = make_video(tmp_path, "mp4", seconds=2)
    faststart_mp4 = tmp_path / "fast.mp4"
    subprocess.run(
        [
            FFMPEG,
            "-v",
            "error",
            "-i",
            str(video),
            "-c",
            "copy",
            "-movflags",
            "+faststart",
            str(faststart_mp4),
        ],
        check=True,
    )
    data = video.read_bytes()
    for name, blob in {
        "index first already": faststart_mp4.read_bytes(),
        "Matroska": make_video(tmp_path, "mkv-mp3", seconds=2).read_bytes(),
        "cut short": data[:-200],
        "text": b"just some text, not a video at all" * 100,
        "empty": b"",
    }.items():
        assert faststart.plan(_reader(blob), len(blob)) is None, name
    # None means: the chunks go out untouched.
    assert list(faststart.reorder(None, [b"ab", b"cd"])) == [b"ab", b"cd"]


def _box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(body), kind) + body


def _mp4(stco_body: bytes, *, leaf: bytes = b"stco", mdat: bytes = b"\0" * 64) -> bytes:
    stbl = _box(b"stbl", _box(leaf, stco_body))
    moov = _box(b"moov", _box(b"trak", _box(b"mdia", _box(b"minf", stbl))))
    return _box(b"ftyp", b"isom\0\0\0\0isom") + _box(b"mdat", mdat) + moov


def test_chunk_offsets_move_by_the_size_of_the_index():
    data = _mp4(struct.pack(">II", 0, 2) + struct.pack(">II", 24, 40))
    layout = faststart.plan(_reader(data), len(data))
    assert layout is not None
    moov_size = len(data) - layout.moov_at
    offsets = struct.unpack(">II", layout.moov[-8:])
    assert offsets == (24 + moov_size, 40 + moov_size)


@pytest.mark.parametrize(
    "hostile",
    [
        # stco says a million entries and holds two
        _mp4(struct.pack(">II", 0, 1_000_000) + struct.pack(">II", 24, 40)),
        # an offset that points into the index itself
        _mp4(struct.pack(">II", 0, 1) + struct.pack(">I", 24 + 8 + 64 + 4)),
        # a compressed index, whose offsets cannot be read
        _mp4(b"\0" * 16, leaf=b"cmov"),
        # a box inside the index that claims to be larger than it
        _mp4(struct.pack(">II", 0, 1) + struct.pack(">I", 24))[:-12]
        + struct.pack(">I4s", 4000, b"stco")
        + b"\0" * 4,
    ],
    ids=["entries", "into-moov", "cmov", "oversized-box"],
)
def test_hostile_indexes_are_copied_as_they_are(hostile):
    assert faststart.plan(_reader(hostile), len(hostile)) is None


def test_offsets_that_would_overflow_32_bits_are_left_to_ffmpeg():
    """A file past 4 GiB whose stco offsets, moved, would no longer fit in 32 bits."""
    big = (1 << 32) - 64
    head = _box(b"ftyp", b"isom\0\0\0\0isom") + struct.pack(">I4sQ", 1, b"mdat", 16 + big)
    moov_at = len(head) + big
    # The last sample's chunk starts just before the index: moved by it, it passes 2**32.
    stbl = _box(b"stbl", _box(b"stco", struct.pack(">III", 0, 1, moov_at - 2)))
    moov = _box(b"moov", _box(b"trak", _box(b"mdia", _box(b"minf", stbl))))
    length = moov_at + len(moov)

    def read_at(offset: int, n: int) -> bytes:  # a virtual file: head, zeros, moov
        out = bytearray()
        for at in range(offset, min(offset + n, length)):
            if at < len(head):
                out.append(head[at])
            elif at >= moov_at:
                out.append(moov[at - moov_at])
            else:
                out.append(0)
        return bytes(out)

    assert faststart.plan(read_at, length) is None


def test_an_index_larger_than_the_limit_is_not_held_in_memory(tmp_path, monkeypatch):
    data = make_video(tmp_path, "mp4", seconds=2).read_bytes()
    assert faststart.plan(_reader(data), len(data)) is not None
    monkeypatch.setattr(faststart, "MAX_MOOV", 100)
    assert faststart.plan(_reader(data), len(data)) is None


def test_reordering_keeps_every_byte_whatever_the_chunk_sizes():
    rng = random.Random(7)
    source = bytes(rng.randrange(256) for _ in range(300))
    layout = faststart.Layout(mdat=40, moov_at=200, moov=b"M" * 60)
    expected = source[:40] + layout.moov + source[40:200] + source[260:]
    for _ in range(200):
        chunks, at = [], 0
        while at < len(source):
            size = rng.randint(1, 90)
            chunks.append(source[at : at + size])
            at += size
        got = b"".join(bytes(p) for p in faststart.reorder(layout, chunks))
        assert got == expected


def test_a_huge_offset_table_is_moved_without_a_huge_memory_cost():
    """A hostile (or 2-hour) index: a million chunk offsets, moved in slices."""
    import tracemalloc

    count = 1_000_000
    table = struct.pack(">II", 0, count) + struct.pack(f">{count}I", *([24] * count))
    data = _mp4(table)
    tracemalloc.start()
    layout = faststart.plan(_reader(data), len(data))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert layout is not None
    moov_size = len(data) - layout.moov_at
    assert struct.unpack(">I", layout.moov[-4:]) == (24 + moov_size,)
    # The index itself (4 MB) is held once more while it is rewritten; not once per entry.
    assert peak < 3 * len(table)


def test_planning_leaves_no_reference_cycle_to_hold_the_index(tmp_path):
    """Each job's moov is freed when the job ends, not at the next full garbage collection.

    A worker process runs thousands of jobs and collects its oldest generation rarely: a cycle
    per job kept every moov (0.5 MB for 600 s of video) and grew the worker's RSS job by job.
    """
    import gc

    data = make_video(tmp_path, "mp4", seconds=2).read_bytes()
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        layout = faststart.plan(_reader(data), len(data))
        assert layout is not None
        list(faststart.reorder(layout, [data]))
        del layout
        gc.collect()
        ours = [o for o in gc.garbage if getattr(o, "__module__", None) == faststart.__name__]
        assert not ours, f"left for the garbage collector: {ours}"
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()

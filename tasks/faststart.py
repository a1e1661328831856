"""Lay out an MP4 whose index follows its media data index-first, while it is copied.

ffmpeg reads an MP4's `moov` (the index of every sample) before any sample. Most MP4s have it
at the end: ffmpeg, phones and cameras write it last. Copied as it is, such a file keeps
ffmpeg waiting for the whole copy out of GridFS. Written `moov` first, with its chunk offsets
moved by the `moov`'s size, it converts while the rest is still being copied: the same samples,
so the same MP3 (`ffmpeg -movflags faststart` does the same, after the fact).

The file is untrusted: every size is checked against its box, and anything this module does not
understand is copied as it is, which ffmpeg then reads as it always did. The same walk of the
top-level boxes tells the conversion whether an MP4 was cut short (`runs_past_its_end`).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from core import sniff

#: An index this large is copied where it is rather than held in memory. A 600 s video at 30
#: frames per second has a 0.5 MB moov: this is some 2.5 hours.
MAX_MOOV = 8 * 1024 * 1024
#: Chunk offsets are moved this many at a time, so that a hostile table costs no more memory.
_SLICE = 16384
#: An MP4 has a handful of top-level boxes; a fragmented one has many and is not laid out.
MAX_TOP_BOXES = 64
#: Boxes on the way from the moov to the chunk offset tables (stco, co64).
_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}


@dataclass(frozen=True)
class Layout:
    """Where the index goes: before the media data at `mdat`, moved there from `moov_at`."""

    mdat: int
    moov_at: int
    moov: bytes | bytearray

    @property
    def moov_end(self) -> int:
        return self.moov_at + len(self.moov)


class _Unsupported(Exception):
    """The file is not one this module lays out; it is copied as it is."""


class _PastTheEnd(_Unsupported):
    """A box claims bytes beyond the end of the file (or of the box holding it)."""


def _box(head: bytes, offset: int, end: int) -> tuple[bytes, int, int]:
    """Return (type, size, header size) of the box whose first 16 bytes are `head`."""
    if len(head) < 8:
        raise _Unsupported("short box header")
    size, kind = struct.unpack(">I4s", head[:8])
    header = 8
    if size == 1:
        if len(head) < 16:
            raise _Unsupported("short box header")
        size, header = struct.unpack(">Q", head[8:16])[0], 16
    elif size == 0:
        size = end - offset
    if size < header:
        raise _Unsupported(f"box {kind!r} at {offset} is smaller than its header")
    if offset + size > end:
        raise _PastTheEnd(f"box {kind!r} at {offset} runs past the end")
    return kind, size, header


def _top_boxes(read_at: Callable[[int, int], bytes], length: int) -> list[tuple[bytes, int, int]]:
    """Return (type, offset, size) of an MP4/QuickTime file's top-level boxes, which fill it."""
    if sniff.container_of(bytes(read_at(0, 16))) != "mp4/mov":
        raise _Unsupported("not an MP4/QuickTime file")
    boxes: list[tuple[bytes, int, int]] = []
    offset = 0
    while offset < length:
        if len(boxes) == MAX_TOP_BOXES:
            raise _Unsupported("too many top-level boxes")
        kind, size, _ = _box(bytes(read_at(offset, 16)), offset, length)
        boxes.append((kind, offset, size))
        offset += size
    return boxes


def runs_past_its_end(read_at: Callable[[int, int], bytes], length: int) -> bool:
    """Return whether the file is an MP4/QuickTime file whose top-level boxes claim missing bytes.

    That is an upload cut short: ffmpeg says nothing when the cut falls between two samples.
    """
    try:
        _top_boxes(read_at, length)
    except _PastTheEnd:
        return True
    except (_Unsupported, struct.error):
        return False
    return False


def plan(read_at: Callable[[int, int], bytes], length: int) -> Layout | None:
    """Return how to lay out the file index-first, or None to copy it as it is.

    `read_at(offset, n)` reads the stored file. None for anything but an MP4/QuickTime file
    whose top-level boxes fill it exactly, with one moov after its first mdat: an index-first
    file, a file cut short and a fragmented one are all copied as they are.
    """
    try:
        return _plan(read_at, length)
    except (_Unsupported, struct.error):
        return None


def _plan(read_at: Callable[[int, int], bytes], length: int) -> Layout | None:
    boxes = _top_boxes(read_at, length)
    kinds = [kind for kind, _, _ in boxes]
    if kinds.count(b"moov") != 1 or b"mdat" not in kinds or b"moof" in kinds:
        return None
    _, moov_at, moov_size = boxes[kinds.index(b"moov")]
    mdat = boxes[kinds.index(b"mdat")][1]
    if moov_at < mdat or moov_size > MAX_MOOV:
        return None
    data = read_at(moov_at, moov_size)
    moov = data if isinstance(data, bytearray) else bytearray(data)  # one copy of it at most
    if len(moov) != moov_size:
        return None

    def moved(position: int) -> int:
        # Only what lies between the media data's start and the moov's old place moves.
        if mdat <= position < moov_at:
            return position + moov_size
        if moov_at <= position < moov_at + moov_size:
            raise _Unsupported("a chunk offset points into the moov")
        return position

    _move_offsets(moov, moved)
    return Layout(mdat=mdat, moov_at=moov_at, moov=moov)


def _move_offsets(moov: bytearray, moved: Callable[[int], int]) -> None:
    """Rewrite, in place, every chunk offset in the moov through `moved`."""
    _, size, header = _box(bytes(moov[:16]), 0, len(moov))
    _walk(moov, moved, header, size)


def _walk(moov: bytearray, moved: Callable[[int], int], start: int, end: int) -> None:
    # A function of the module, not a closure: a closure calling itself is a reference cycle,
    # which would keep each job's moov alive until the next full garbage collection.
    offset = start
    while offset < end:
        kind, size, header = _box(bytes(moov[offset : offset + 16]), offset, end)
        body, box_end = offset + header, offset + size
        if kind == b"cmov":
            raise _Unsupported("compressed moov")  # its offsets cannot be reached
        if kind in _CONTAINERS:
            _walk(moov, moved, body, box_end)
        elif kind in (b"stco", b"co64"):
            width, fmt = (4, "I") if kind == b"stco" else (8, "Q")
            if body + 8 > box_end:
                raise _Unsupported(f"short {kind!r}")
            (count,) = struct.unpack_from(">I", moov, body + 4)
            if body + 8 + count * width > box_end:
                raise _Unsupported(f"{kind!r} claims more entries than it holds")
            for first in range(0, count, _SLICE):
                n, at = min(_SLICE, count - first), body + 8 + first * width
                values = [moved(v) for v in struct.unpack_from(f">{n}{fmt}", moov, at)]
                if kind == b"stco" and max(values) >= 1 << 32:
                    raise _Unsupported("moved offsets do not fit stco")
                struct.pack_into(f">{n}{fmt}", moov, at, *values)
        offset = box_end


def reorder(layout: Layout | None, chunks: Iterable[bytes]) -> Iterator[bytes | memoryview]:
    """Yield the file's bytes in the layout's order, from its chunks in their stored order."""
    if layout is None:
        yield from chunks
        return
    start = 0
    moov_sent = False
    for chunk in chunks:
        view, end = memoryview(chunk), start + len(chunk)
        if start < layout.mdat:  # what comes before the media data stays there
            yield view[: min(end, layout.mdat) - start]
        if end > layout.mdat:
            if not moov_sent:
                yield layout.moov
                moov_sent = True
            begin = max(start, layout.mdat)
            if begin < layout.moov_at:  # the media data, up to where the moov was
                yield view[begin - start : min(end, layout.moov_at) - start]
            if end > layout.moov_end:  # whatever followed the moov
                yield view[max(start, layout.moov_end) - start :]
        start = end

"""Tell from a file's first bytes whether it is an audio/video container ffmpeg should open."""

from __future__ import annotations

#: Bytes needed to recognise every container below (MPEG-TS needs its second sync byte at 188).
HEAD_BYTES = 192

_QUICKTIME_ATOMS = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot")


#: Containers told by their first bytes alone; no two of these starts overlap, nor do they
#: overlap the starts that `container_of` checks by hand.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x1a\x45\xdf\xa3", "matroska/webm"),
    (b"OggS", "ogg"),
    (b"FLV\x01", "flv"),
    (b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", "asf/wmv"),
    (b"\x00\x00\x01\xba", "mpeg-ps"),
    (b"\x00\x00\x01\xb3", "mpeg-ps"),
    (b"fLaC", "flac"),
    (b".RMF", "realmedia"),
    (b"\x06\x0e\x2b\x34", "mxf"),
)


def container_of(head: bytes) -> str | None:
    """Return the container the bytes start, or None when they are no media we know."""
    if len(head) >= 8 and head[4:8] in _QUICKTIME_ATOMS:
        return "mp4/mov"
    for magic, container in _MAGIC:
        if head.startswith(magic):
            return container
    if head.startswith(b"RIFF") and head[8:12] in (b"AVI ", b"WAVE"):
        return "avi" if head[8:12] == b"AVI " else "wav"
    if len(head) > 188 and head[0] == 0x47 and head[188] == 0x47:
        return "mpeg-ts"
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mp3/aac"
    return None

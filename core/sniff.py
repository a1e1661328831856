"""Tell from a file's first bytes whether it is an audio/video container ffmpeg should open."""

from __future__ import annotations

#: Bytes needed to recognise every container below (MPEG-TS needs its second sync byte at 188).
HEAD_BYTES = 192

_QUICKTIME_ATOMS = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot")


def container_of(head: bytes) -> str | None:
    """Return the container the bytes start, or None when they are no media we know."""
    if len(head) >= 8 and head[4:8] in _QUICKTIME_ATOMS:
        return "mp4/mov"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska/webm"
    if head.startswith(b"RIFF") and head[8:12] in (b"AVI ", b"WAVE"):
        return "avi" if head[8:12] == b"AVI " else "wav"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"FLV\x01"):
        return "flv"
    if head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"):
        return "asf/wmv"
    if head.startswith((b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3")):
        return "mpeg-ps"
    if len(head) > 188 and head[0] == 0x47 and head[188] == 0x47:
        return "mpeg-ts"
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mp3/aac"
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b".RMF"):
        return "realmedia"
    if head.startswith(b"\x06\x0e\x2b\x34"):
        return "mxf"
    return None

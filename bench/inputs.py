"""Generate the benchmark's inputs once with imageio-ffmpeg's ffmpeg, into bench/out/inputs.

Every video is 1280x720, 30 fps, H.264 from x264's fastest preset (`ultrafast`) at 3 Mbit/s, a
typical bitrate for 720p, with 48 kHz stereo audio: two tones and pink noise, so LAME has real
work to do. The long video is encoded once; the others are cut or remuxed from it with stream
copy, so generating them costs one x264 run. Files are written under a temporary name and renamed,
so an interrupted run never leaves a half file in the cache.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
OUT = Path(__file__).resolve().parent / "out"
INPUTS = OUT / "inputs"

VIDEO = ["-c:v", "libx264", "-preset", "ultrafast", "-b:v", "3000k", "-pix_fmt", "yuv420p"]
AUDIO_GRAPH = (
    "[1:a][2:a]join=inputs=2:channel_layout=stereo[tones];"
    "[3:a]aformat=channel_layouts=stereo[noise];"
    "[tones][noise]amix=inputs=2:normalize=0[a]"
)


@dataclass(frozen=True)
class Input:
    """One benchmark input."""

    key: str  # short name used in tables
    label: str  # what it is, for people
    path: Path
    seconds: float


def _ffmpeg(*args: str) -> None:
    subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args], check=True
    )


def _make(path: Path, *args: str) -> Path:
    if path.exists():
        return path
    part = path.with_name(f".part-{path.name}")
    _ffmpeg(*args, str(part))
    part.rename(path)
    return path


def _master(seconds: int) -> Path:
    sources = [
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=1280x720:rate=30",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=554:sample_rate=48000",
        "-f",
        "lavfi",
        "-i",
        "anoisesrc=color=pink:amplitude=0.05:sample_rate=48000",
    ]
    return _make(
        INPUTS / f"h264-aac-{seconds}s.mp4",
        *sources,
        "-filter_complex",
        AUDIO_GRAPH,
        "-map",
        "0:v",
        "-map",
        "[a]",
        "-t",
        str(seconds),
        *VIDEO,
        "-c:a",
        "aac",
        "-b:a",
        "160k",
        "-f",
        "mp4",
    )


def build(*, quick: bool) -> dict[str, Input]:
    """Return the inputs (generating what the cache lacks): clip, short, long, long-mp3, mkv."""
    INPUTS.mkdir(parents=True, exist_ok=True)
    long_s, short_s, clip_s = (20, 10, 5) if quick else (600, 60, 5)
    master = _master(long_s)

    def cut(name: str, seconds: int, *extra: str) -> Path:
        return _make(
            INPUTS / name, "-i", str(master), "-t", str(seconds), "-map", "0", "-c", "copy", *extra
        )

    short = cut(f"h264-aac-{short_s}s.mp4", short_s, "-f", "mp4")
    clip = cut(f"h264-aac-{clip_s}s-clip.mp4", clip_s, "-f", "mp4")
    mkv = _make(
        INPUTS / f"h264-aac-{short_s}s.mkv",
        "-i",
        str(short),
        "-map",
        "0",
        "-c",
        "copy",
        "-f",
        "matroska",
    )
    mp3 = _make(
        INPUTS / f"h264-mp3-{long_s}s.mp4",
        "-i",
        str(master),
        "-map",
        "0",
        "-c:v",
        "copy",
        "-c:a",
        "libmp3lame",
        "-b:a",
        "192k",
        "-f",
        "mp4",
    )
    return {
        "clip": Input("clip", f"{clip_s} s MP4 (H.264 + AAC)", clip, clip_s),
        "short": Input("short", f"{short_s} s MP4 (H.264 + AAC)", short, short_s),
        "long": Input("long", f"{long_s} s MP4 (H.264 + AAC)", master, long_s),
        "long-mp3": Input("long-mp3", f"{long_s} s MP4 (H.264 + MP3)", mp3, long_s),
        "mkv": Input("mkv", f"{short_s} s MKV (H.264 + AAC)", mkv, short_s),
    }

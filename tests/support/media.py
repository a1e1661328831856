"""Generate the test videos with the same ffmpeg the service uses."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import imageio_ffmpeg

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()

#: (container suffix, video codec args, audio codec args) for each kind of test video.
KINDS: dict[str, tuple[str, list[str], list[str]]] = {
    "mp4": (
        ".mp4",
        ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"],
        ["-c:a", "aac"],
    ),
    "mkv-mp3": (
        ".mkv",
        ["-c:v", "libx264", "-preset", "ultrafast"],
        ["-c:a", "libmp3lame", "-b:a", "128k"],
    ),
    "webm-vp9-opus": (
        ".webm",
        ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8"],
        ["-c:a", "libopus"],
    ),
    "webm-vp8-vorbis": (
        ".webm",
        ["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8"],
        ["-c:a", "libvorbis"],
    ),
    "mov": (
        ".mov",
        ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"],
        ["-c:a", "aac"],
    ),
}


def make_video(
    folder: Path,
    kind: str = "mp4",
    *,
    seconds: float = 3,
    audio: bool = True,
    size: str = "160x120",
    name: str | None = None,
    title: str | None = None,
) -> Path:
    """Write a short test video of `kind` (a tone over a test pattern) and return its path."""
    suffix, vcodec, acodec = KINDS[kind]
    path = folder / (name or f"{kind}-{seconds:g}s{'' if audio else '-silent'}{suffix}")
    args = [
        FFMPEG,
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        f"testsrc=size={size}:rate=10:duration={seconds}",
    ]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
    args += [*vcodec, *(acodec if audio else ["-an"]), "-t", str(seconds)]
    if title:
        # The title sits near the start of an MKV, where tests/support/fake_ffmpeg.py looks.
        args += ["-metadata", f"title={title}"]
    args.append(str(path))
    subprocess.run(args, check=True, capture_output=True)
    return path


def duration_of(path: Path) -> float:
    """Return a media file's duration in seconds, decoded to the end (not from its header)."""
    result = subprocess.run(
        [FFMPEG, "-v", "info", "-nostdin", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
    )
    times = re.findall(r"time=(\d+):(\d+):(\d+(?:\.\d+)?)", result.stderr)
    if not times:
        raise AssertionError(f"ffmpeg found no media in {path}: {result.stderr[-500:]}")
    h, m, s = times[-1]
    return int(h) * 3600 + int(m) * 60 + float(s)


def audio_codec_of(path: Path) -> str | None:
    """Return the name of the first audio stream's codec, from ffmpeg's banner."""
    result = subprocess.run(
        [FFMPEG, "-hide_banner", "-i", str(path)], capture_output=True, text=True
    )
    found = re.search(r"Stream #\S+.*?: Audio: (\w+)", result.stderr)
    return found.group(1) if found else None


def json_dump(value: object) -> str:
    return json.dumps(value, indent=2, default=str)

"""Run ffmpeg on an untrusted local file: convert its audio to MP3, report progress, say why not.

ffmpeg is the binary moviepy resolves (imageio-ffmpeg's bundled build unless `FFMPEG_BINARY` names
another). Every call reads only the local file: `-protocol_whitelist file` (and `subfile`, which
reads a file still being copied, see `_input`) forbids the network, and
`-format_whitelist` forbids playlist and script demuxers (HLS, DASH, ffconcat, image sequences)
that would open other files, also when they hide inside a container such as AVI.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tasks import faststart

#: Demuxers of real audio/video containers; nothing that reads a list of other files.
FORMAT_WHITELIST = ",".join(
    [
        "mov,mp4,m4a,3gp,3g2,mj2",
        "matroska,webm",
        "avi",
        "flv",
        "mpegts",
        "mpeg",
        "ogg",
        "asf",
        "wav",
        "mp3",
        "aac",
        "flac",
        "nut",
        "mxf",
        "rm",
        "dv",
        "h264",
        "hevc",
        "m4v",
    ]
)
SAFE_INPUT = ["-protocol_whitelist", "file", "-format_whitelist", FORMAT_WHITELIST]

#: LAME VBR quality used when the upload asks for nothing: about 165 kbit/s for stereo, which
#: listeners cannot tell from the source in blind tests, at the encoder's normal speed.
DEFAULT_QUALITY = 4


class MediaError(Exception):
    """The file cannot be converted; the message is for the person who uploaded it."""


class Cancelled(Exception):
    """The job was cancelled while ffmpeg ran; ffmpeg has been killed."""


def binary() -> str:
    """Return the ffmpeg executable: `FFMPEG_BINARY` if set, else the one moviepy resolves."""
    configured = os.environ.get("FFMPEG_BINARY")
    if configured:
        return configured
    from moviepy.config import FFMPEG_BINARY

    return FFMPEG_BINARY


_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)
#: util-linux's setpriv (Essential on Debian, so in every image) sets the signal and execs ffmpeg.
_SETPRIV = shutil.which("setpriv")


def _die_with_parent() -> None:
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _spawn(argv: list[str]) -> subprocess.Popen:
    """Start ffmpeg so that the kernel kills it if the worker process dies.

    No ffmpeg is then ever left holding a deleted video. Through setpriv rather than a
    `preexec_fn`: with one, Python must fork() the whole pool process (copying its page tables,
    after which every page it writes faults once) instead of vfork(); measured beside an 80 MB
    heap, 8.8 to 33 ms per start against 2.1 to 3.7 ms (bench/FINDINGS.md).
    """
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "stdin": subprocess.DEVNULL}
    if _SETPRIV:
        # As Popen itself would: a missing ffmpeg is the deployment's fault, not the video's.
        if not os.access(argv[0], os.X_OK):
            raise FileNotFoundError(f"ffmpeg is not an executable file: {argv[0]}")
        return subprocess.Popen([_SETPRIV, "--pdeathsig", "KILL", "--", *argv], **pipes)
    return subprocess.Popen(argv, preexec_fn=_die_with_parent, **pipes)


@dataclass(frozen=True)
class Probe:
    """What the conversion needs to know about an input."""

    duration: float | None
    audio_codec: str | None
    has_audio: bool


_AUDIO_CODEC = re.compile(r"Stream #\d+:\d+\S*: Audio: (\w+)")
#: ffmpeg logs this right after describing its input (at `-loglevel info`), before converting.
_END_OF_INPUT = b"\nStream mapping:"
#: An input's description is a few KB; a log that has not ended it by this size is cut here.
_DESCRIPTION_LIMIT = 256 * 1024


def _has_media_data(path: Path | None) -> bool:
    # An MP4 cut short keeps its media data (`mdat`) and loses the index ffmpeg reads last.
    if path is None:
        return False
    with contextlib.suppress(OSError), open(path, "rb") as fh:
        return b"mdat" in fh.read(1 << 20)
    return False


TRUNCATED = "the file is truncated or damaged: it ends before its media data does"
#: What ffmpeg logs when an input ends before its own index says it should.
_TRUNCATED = ("End of file", "Truncat", "partial file")
#: An MP3 this much shorter than the input's duration, with one of those marks logged, is cut.
_SHORT_BY = 0.05


def _complaints(log: str) -> str:
    """Return ffmpeg's own lines of a log, without the indented lines that describe the streams.

    Those carry the file's metadata (its title, comments), which are the uploader's words and
    must not be taken for ffmpeg's complaints.
    """
    return "\n".join(line for line in log.splitlines() if not line.startswith(" "))


def _says_truncated(complaints: str) -> bool:
    """Return whether ffmpeg's own lines (see `_complaints`) say the input ended early."""
    return any(mark in complaints for mark in _TRUNCATED)


def _reason(stderr: str, path: Path | None = None) -> str:
    """Turn ffmpeg's complaint about an input into a sentence for a person."""
    stderr = _complaints(stderr)
    if _says_truncated(stderr) or ("moov atom not found" in stderr and _has_media_data(path)):
        return TRUNCATED
    if any(
        mark in stderr
        for mark in (
            "Invalid data found",
            "Format not on whitelist",
            "Invalid argument",
            "could not find codec parameters",
        )
    ):
        return "not a media file: ffmpeg found no audio or video it can read in it"
    return "the file could not be read as audio or video"


def probe(path: Path, *, timeout: float = 30) -> Probe:
    """Read the input's streams and duration, or raise MediaError saying why it is unusable."""
    try:
        result = subprocess.run(
            [binary(), "-hide_banner", "-nostdin", *SAFE_INPUT, "-i", f"file:{path}"],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            # No preexec_fn here: with one, Python must fork() the whole worker (copying its
            # page tables, ~25% of the pool process's CPU per job in bench/RESULTS.md) instead
            # of vfork(). A probe reads a header and ends by itself; `timeout` bounds it.
        )
    except subprocess.TimeoutExpired:
        raise MediaError(f"reading the file took longer than {timeout:g} s") from None
    return describe(result.stderr, path)


def describe(log: str, path: Path | None = None) -> Probe:
    """Read the input's streams and duration from ffmpeg's log, or raise MediaError saying why."""
    # The input's description ends where ffmpeg starts describing what it will write.
    section = log.split(_END_OF_INPUT.decode(), 1)[0]
    if "Input #0" not in section:
        raise MediaError(_reason(log, path))
    # Imported here: moviepy pulls in numpy, which a health probe importing `tasks` need not pay.
    from moviepy.video.io.ffmpeg_reader import FFmpegInfosParser

    try:
        infos = FFmpegInfosParser(section, str(path)).parse()
    except Exception:
        infos = {}
    codec = _AUDIO_CODEC.search(section)
    return Probe(
        duration=infos.get("duration") or None,
        audio_codec=codec.group(1) if codec else None,
        has_audio=codec is not None,
    )


class Growing(Protocol):
    """An input file still being written, as `tasks.video_copy.VideoCopy` writes the video."""

    length: int

    def check(self) -> None:
        """Raise the writer's error, if it has failed."""

    def wait(self) -> None:
        """Return once the file is whole; raise the writer's error if it failed."""


def _input(src: Path, length: int | None) -> list[str]:
    """Return the options and `-i` that read `src`; `length` when it is still being written.

    Then ffmpeg's file protocol follows the file (`-follow 1`: at the end of what is written it
    waits for more instead of ending), and the subfile protocol tells ffmpeg the size the file
    will have, and ends the input there: without it ffmpeg would take what is written for the
    whole file, and at the real end it would wait for ever.
    """
    if not length:
        return [*SAFE_INPUT, "-i", f"file:{src}"]
    at = SAFE_INPUT.index("-protocol_whitelist") + 1
    safe = [*SAFE_INPUT[:at], "subfile,file", *SAFE_INPUT[at + 1 :]]
    return [*safe, "-follow", "1", "-i", f"subfile,,start,0,end,{length},,:file:{src}"]


def copies(info: Probe, *, bitrate: int | None, quality: int | None) -> bool:
    """Return whether the input's audio is stream-copied rather than re-encoded."""
    # The audio is MP3 already: copying the stream is ~25 times cheaper and loses nothing.
    return info.audio_codec == "mp3" and bitrate is None and quality is None


def command(
    src: Path,
    dst: Path,
    info: Probe,
    *,
    bitrate: int | None,
    quality: int | None,
    length: int | None = None,
) -> list[str]:
    """Return the ffmpeg command that writes the input's first audio track to `dst` as MP3.

    `length` is the size `src` will have, when it is still being written (see `_input`).
    """
    if copies(info, bitrate=bitrate, quality=quality):
        codec = ["-c:a", "copy"]
    elif bitrate is not None:
        codec = ["-c:a", "libmp3lame", "-b:a", f"{bitrate}k"]
    else:
        codec = ["-c:a", "libmp3lame", "-q:a", str(DEFAULT_QUALITY if quality is None else quality)]
    return [
        binary(),
        "-hide_banner",
        "-nostdin",
        "-nostats",
        # `info`: the log then describes the input, which spares the conversion a probe run.
        "-loglevel",
        "info",
        "-y",
        *_input(src, length),
        "-map",
        "0:a:0",
        "-vn",
        "-sn",
        "-dn",
        "-map_metadata",
        "0",
        "-map_chapters",
        "-1",
        *codec,
        "-progress",
        "pipe:1",
        "-f",
        "mp3",
        f"file:{dst}",
    ]


@dataclass
class Run:
    """How a finished conversion went."""

    seconds: float
    out_seconds: float
    input: Probe
    copied: bool


def convert(
    src: Path,
    dst: Path,
    *,
    bitrate: int | None,
    quality: int | None,
    on_progress: Callable[[int], bool],
    time_limit: float,
    every: float = 0.5,
    growing: Growing | None = None,
) -> Run:
    """Write the input's first audio track to `dst` as MP3, calling `on_progress(percent)`.

    No probe runs first: ffmpeg describes its input before converting it, and the conversion
    reads that description (one ffmpeg start fewer per job, bench/FINDINGS.md). It starts as a
    re-encode; when the input turns out to carry MP3 audio and no settings were asked for, it
    is stopped there and started again as a stream copy.

    `on_progress` returns False when the job was cancelled: ffmpeg is killed and Cancelled raised.
    Past `time_limit` seconds ffmpeg is killed and MediaError raised.
    With `growing`, `src` is still being written: ffmpeg waits for what is not there yet, and
    an error of the writing stops ffmpeg and is raised.
    """
    deadline = time.monotonic() + time_limit
    described: list[Probe] = []

    def reencode_it(info: Probe) -> bool:
        described.append(info)
        if not info.has_audio:
            raise MediaError("the video has no audio track")
        return not copies(info, bitrate=bitrate, quality=quality)

    unknown = Probe(duration=None, audio_codec=None, has_audio=True)
    length = growing.length if growing else None
    argv = command(src, dst, unknown, bitrate=bitrate, quality=quality, length=length)
    run = _run(argv, src, reencode_it, on_progress, deadline, time_limit, every, growing)
    if run is None:
        argv = command(src, dst, described[0], bitrate=bitrate, quality=quality, length=length)
        run = _run(argv, src, lambda _info: True, on_progress, deadline, time_limit, every, growing)
    assert run is not None
    return run


def _run(
    argv: list[str],
    src: Path,
    on_input: Callable[[Probe], bool],
    on_progress: Callable[[int], bool],
    deadline: float,
    time_limit: float,
    every: float,
    growing: Growing | None,
) -> Run | None:
    """Run one ffmpeg; return None if `on_input`, given the input's description, said stop."""
    started = time.monotonic()
    proc = _spawn(argv)
    out_us = 0
    last_report = 0.0
    buffer = b""
    head: bytes | None = b""  # the log until the input is described; None once it is
    info: Probe | None = None
    stderr_tail = b""
    try:
        streams = [proc.stdout, proc.stderr]
        while streams:
            ready, _, _ = select.select(streams, [], [], every)
            for stream in ready:
                chunk = os.read(stream.fileno(), 65536)
                if not chunk:
                    streams.remove(stream)
                elif stream is proc.stderr:
                    stderr_tail = (stderr_tail + chunk)[-16000:]
                    if head is not None:
                        head = (head + chunk)[:_DESCRIPTION_LIMIT]
                else:
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if line.startswith(b"out_time_us="):
                            with contextlib.suppress(ValueError):
                                out_us = max(out_us, int(line[12:]))
            if head is not None and (
                _END_OF_INPUT in head
                or proc.stderr not in streams
                or len(head) >= _DESCRIPTION_LIMIT
            ):
                log, head = head.decode(errors="replace"), None
                # Without a description ffmpeg could not read the input, and is ending: the
                # exit code and the log's tail say why, below.
                if "Input #0" in log:
                    info = describe(log, src)
                    if not on_input(info):
                        return None
            if time.monotonic() > deadline:
                raise MediaError(
                    f"the conversion took longer than {time_limit:g} s and was stopped"
                )
            if time.monotonic() - last_report >= every:
                last_report = time.monotonic()
                if growing:
                    growing.check()  # a copy that failed leaves ffmpeg waiting for ever
                if not on_progress(_percent(out_us, info and info.duration)):
                    raise Cancelled()
        code = proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if code < 0:
        raise FfmpegCrashed(f"ffmpeg was killed by signal {-code}")
    if growing:
        # The verdicts below read the file; and a copy that failed is the cause, not the video.
        growing.wait()
    log = stderr_tail.decode(errors="replace")
    if code != 0 or info is None:
        raise MediaError(
            _reason(log, src) if log.strip() else f"ffmpeg failed with exit code {code}"
        )
    if _cut_short(out_us / 1e6, info.duration, log, src):
        # ffmpeg ends a file cut short with exit code 0 and the audio it could read.
        raise MediaError(TRUNCATED)
    return Run(
        seconds=time.monotonic() - started,
        out_seconds=out_us / 1e6,
        input=info,
        copied="copy" in argv,
    )


def _cut_short(out_seconds: float, duration: float | None, log: str, path: Path) -> bool:
    """Return whether the MP3 came out short because the input ended early.

    A shorter audio track alone is no sign: videos often have audio that stops before the
    picture. ffmpeg must also have logged that the file ended before its index said, or the
    file be an MP4 whose boxes run past its end (ffmpeg says nothing when the cut falls
    between two samples).
    """
    if not duration or out_seconds >= duration * (1 - _SHORT_BY):
        return False
    return _says_truncated(_complaints(log)) or _mp4_runs_past_its_end(path)


def _mp4_runs_past_its_end(path: Path) -> bool:
    """Return whether the file is an MP4/QuickTime file whose last box claims missing bytes."""
    with contextlib.suppress(OSError), open(path, "rb") as fh:

        def read_at(offset: int, n: int) -> bytes:
            fh.seek(offset)
            return fh.read(n)

        # The upload was let in by the same test (core.sniff); what else it is, is not walked.
        return faststart.runs_past_its_end(read_at, os.fstat(fh.fileno()).st_size)
    return False


class FfmpegCrashed(Exception):
    """ffmpeg died from a signal: maybe the machine, maybe the input; worth a bounded retry."""


def _percent(out_us: int, duration: float | None) -> int:
    if not duration:
        return 0
    return max(0, min(99, int(out_us / 1e6 / duration * 100)))

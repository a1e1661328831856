"""Hostile uploads: files that would make ffmpeg read other files or the network, names that climb
out of folders, empty, double and missing files, and bodies past the size limit.

ffmpeg's playlist and script demuxers (HLS, ffconcat) open whatever their text names, and an AVI
may carry such a playlist inside a GAB2 subtitle chunk, the shape of the known ffmpeg exploit. Each
upload below is refused (415) or converts to a `failed` job with a reason a person can read; and
ffmpeg must open no file but its input and output and make no connection. The proof is threefold:
a canary server on a loopback port that every playlist references (TCP and UDP), inotify on a
canary file that every playlist references, and an strace of the worker that records every file
each ffmpeg opens and every socket it makes.
"""

from __future__ import annotations

import io
import re
import shutil
import socket
import struct
import subprocess
import time
import unicodedata
import uuid
from pathlib import Path
from urllib.parse import unquote

import httpx
import psutil
import pytest

from core import jobs
from tests.security.canaries import CanaryServer, FileWatch, Trace
from tests.support import servers, stored
from tests.support.media import FFMPEG, make_video
from tests.support.servers import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

BOUNDARY = "hostile-boundary-7d1f"
#: The gateway started below takes files up to this size (the shared one takes 2 GiB).
SMALL_LIMIT = 256 * 1024


# --- Building the hostile files


def _refs(port: int, canary: Path) -> list[str]:
    """Every way a playlist can point elsewhere: the canary file and the canary port.

    Each ends in `.ts`: ffmpeg's HLS demuxer refuses a whole playlist with one segment of an
    extension it does not expect, and the control test below needs it to follow them all.
    """
    return [
        f"file://{canary}",
        str(canary),
        f"http://127.0.0.1:{port}/leak.ts",
        f"tcp://127.0.0.1:{port}/leak.ts",
        f"udp://127.0.0.1:{port}/leak.ts",
        f"https://127.0.0.1:{port}/leak.ts",
        f"concat:{canary}|{canary}",
    ]


def hls_playlist(port: int, canary: Path) -> bytes:
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:1", "#EXT-X-MEDIA-SEQUENCE:0"]
    for ref in _refs(port, canary):
        lines += ["#EXTINF:1.0,", ref]
    return ("\n".join([*lines, "#EXT-X-ENDLIST"]) + "\n").encode()


def ffconcat_script(port: int, canary: Path) -> bytes:
    return (
        "ffconcat version 1.0\n" + "".join(f"file '{ref}'\n" for ref in _refs(port, canary))
    ).encode()


def dash_manifest(port: int, canary: Path) -> bytes:
    return (
        f'<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static">'
        f"<BaseURL>http://127.0.0.1:{port}/</BaseURL><Period><AdaptationSet><Representation "
        f'id="1" bandwidth="1"><BaseURL>file://{canary}</BaseURL></Representation>'
        f"</AdaptationSet></Period></MPD>"
    ).encode()


def behind_id3(payload: bytes) -> bytes:
    """Put an empty ID3v2 tag first: our sniffer sees MP3, while ffmpeg's prober skips the tag."""
    return b"ID3\x04\x00\x00\x00\x00\x00\x00" + payload


def _chunk(fourcc: bytes, data: bytes) -> bytes:
    return fourcc + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")


def _list(kind: bytes, *chunks: bytes) -> bytes:
    body = kind + b"".join(chunks)
    return b"LIST" + struct.pack("<I", len(body)) + body


def gab2_avi(playlist: bytes) -> bytes:
    """An AVI whose one stream is a GAB2 subtitle that carries `playlist` (the exploit's shape)."""
    avih = struct.pack("<14I", 40000, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0)
    strh = struct.pack(
        "<4s4sIHHIIIIIIII4H",
        b"txts",
        b"\0\0\0\0",
        0,
        0,
        0,
        0,
        1,
        1,
        0,
        1,
        len(playlist) + 64,
        0xFFFFFFFF,
        0,
        0,
        0,
        0,
        0,
    )
    title = "subtitles".encode("utf-16-le") + b"\0\0"
    # "GAB2\0", version 2, the UTF-16 title, then flags and size of the embedded subtitle file.
    gab2 = (
        b"GAB2\0"
        + struct.pack("<HI", 2, len(title))
        + title
        + struct.pack("<HI", 4, len(playlist))
        + playlist
    )
    movi = _list(b"movi", _chunk(b"00tx", gab2))
    idx1 = _chunk(b"idx1", struct.pack("<4sIII", b"00tx", 0x10, 4, len(gab2)))
    strl = _list(b"strl", _chunk(b"strh", strh), _chunk(b"strf", b""))
    body = b"AVI " + _list(b"hdrl", _chunk(b"avih", avih), strl) + movi + idx1
    return b"RIFF" + struct.pack("<I", len(body)) + body


def multipart(*parts: tuple[str, str | None, bytes]) -> bytes:
    """Build a multipart/form-data body by hand, byte for byte: (field, filename or None, data)."""
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += (
            (
                f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + data
            + b"\r\n"
        )
    return out + f"--{BOUNDARY}--\r\n".encode()


def _post(client, user, body: bytes):
    return client.post(
        "/upload",
        headers=user.headers,
        data=body,
        content_type=f"multipart/form-data; boundary={BOUNDARY}",
    )


def _wait_for_end(client, user, job_id: str, timeout: float = 90) -> dict:
    def ended() -> dict | None:
        job = client.get(f"/jobs/{job_id}", headers=user.headers).get_json()
        return job if job["status"] in jobs.TERMINAL else None

    return wait_until(ended, timeout=timeout, what=f"job {job_id} to end", every=0.3)


# --- Fixtures


@pytest.fixture
def canary(tmp_path):
    """A loopback server and a watched MPEG-TS file (with audio) that nothing may touch."""
    path = tmp_path / "canary.ts"
    subprocess.run(
        [
            FFMPEG,
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "sine=duration=1",
            "-c:a",
            "mp2",
            "-f",
            "mpegts",
            str(path),
        ],
        check=True,
    )
    server, watch = CanaryServer().start(), FileWatch(path)
    yield server, watch, path
    watch.close()
    server.stop()


@pytest.fixture(scope="module")
def video_bytes(tmp_path_factory) -> bytes:
    return make_video(tmp_path_factory.mktemp("video"), "mp4", seconds=1).read_bytes()


@pytest.fixture
def worker_trace(worker, run_dir):
    """strace on the shared worker while the test runs.

    None where strace is missing or may not attach (a container without ptrace): the canary
    server and the watched file still stand guard then.
    """
    if shutil.which("strace") is None:
        yield None
        return
    main = psutil.Process(worker.proc.pid)
    pids = [main.pid, *(child.pid for child in main.children(recursive=True))]
    try:
        trace = Trace(pids, run_dir / f"strace-{uuid.uuid4().hex[:8]}.log", FFMPEG)
    except RuntimeError:
        yield None
        return
    yield trace
    if trace.proc.poll() is None:
        trace.stop()


# --- The canaries work


def test_the_canaries_see_an_ffmpeg_that_follows_a_playlist(canary, tmp_path) -> None:
    """Control: ffmpeg without the service's limits, on the same playlist, trips both canaries."""
    server, watch, path = canary
    playlist = tmp_path / "leak.m3u8"
    playlist.write_bytes(hls_playlist(server.port, path))
    subprocess.run(
        [
            FFMPEG,
            "-v",
            "error",
            "-nostdin",
            "-protocol_whitelist",
            "file,http,tcp,udp,crypto,data",
            "-i",
            str(playlist),
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        timeout=60,
    )
    wait_until(lambda: server.seen, timeout=5, what="the canary server to see ffmpeg")
    assert watch.count() > 0


# --- Playlists, scripts and the AVI exploit


HOSTILE = {
    # name: (what it is, the bytes given the canary port and file, refused at upload?)
    "playlist.mp4": ("an HLS playlist", hls_playlist, True),
    "script.mp4": ("an ffconcat script", ffconcat_script, True),
    "manifest.mp4": ("a DASH manifest", dash_manifest, True),
    "id3-playlist.mp4": (
        "an HLS playlist behind an ID3 tag",
        lambda port, path: behind_id3(hls_playlist(port, path)),
        None,
    ),
    "id3-script.mp4": (
        "an ffconcat script behind an ID3 tag",
        lambda port, path: behind_id3(ffconcat_script(port, path)),
        None,
    ),
    "gab2.mp4": (
        "an AVI with an HLS playlist in a GAB2 subtitle",
        lambda port, path: gab2_avi(hls_playlist(port, path)),
        None,
    ),
}


def test_hostile_media_is_refused_or_fails_without_a_leak(
    client, auth, worker, worker_trace, canary, stack_env, smtp_server
) -> None:
    server, watch, path = canary
    user = auth.login()
    accepted: dict[str, str] = {}
    for name, (what, build, refused) in HOSTILE.items():
        data = build(server.port, path)
        response = client.post(
            "/upload", headers=user.headers, data={"file": (io.BytesIO(data), name)}
        )
        if refused:
            assert response.status_code == 415, (what, response.get_json())
        else:
            assert response.status_code in (202, 415), (what, response.get_json())
        if response.status_code == 202:
            accepted[what] = response.get_json()["job_id"]
    outcomes = {what: _wait_for_end(client, user, job_id) for what, job_id in accepted.items()}
    for what, job in outcomes.items():
        assert job["status"] == "failed", (what, job)
        reason = job["error"] or ""
        # A sentence for a person: no traceback, no path of the worker's, no ffmpeg log line.
        assert reason and len(reason) < 200 and "/" not in reason and "Traceback" not in reason
        assert re.fullmatch(r"[\w ,.:;'()\-]+", reason), reason
        wait_until(
            lambda job=job: smtp_server.inbox.for_job(job["id"]),
            timeout=30,
            what=f"the failure email of {what}",
        )
    # Nothing followed any reference.
    assert server.seen == [], server.seen
    assert watch.count() == 0, "ffmpeg opened the canary file"
    traced = "not traced (no strace)"
    if worker_trace is not None:
        runs = worker_trace.stop()
        own = re.compile(rf"^{re.escape(stack_env['TMPDIR'])}/mp3-job-[^/]+/(video|audio\.mp3)$")
        mine = [run for run in runs if any(own.match(p) for p in run.opened)]
        # Every accepted file was probed at least once, and the trace saw ffmpeg open it.
        assert len(mine) >= len(accepted), [run.argv for run in runs]
        for run in runs:
            assert run.foreign_files(own) == [], (run.argv, run.opened)
            assert run.sockets == [], (run.argv, run.sockets)
        traced = f"{len(runs)} ffmpeg runs traced, none opened a foreign file or a socket"
    print(
        f"\nhostile files: {len(HOSTILE)} tried; refused at upload: "
        f"{len(HOSTILE) - len(accepted)}; failed cleanly: {len(outcomes)}; "
        f"leaks: {len(server.seen) + watch.count()}; {traced}"
    )
    for what, job in outcomes.items():
        print(f"  {what}: {job['status']}, {job['error']!r}")


def test_a_text_file_named_mp4_is_refused(client, auth) -> None:
    user = auth.login()
    text = b"Dear diary, today I renamed this letter to holiday.mp4.\n" * 20
    response = client.post(
        "/upload", headers=user.headers, data={"file": (io.BytesIO(text), "holiday.mp4")}
    )
    assert response.status_code == 415
    assert response.get_json()["error"]["code"] == "unsupported_media_type"


# --- Names


NAMES = {
    "../../etc/passwd.mp4": "passwd.mp4",
    "/absolute/path/clip.mp4": "clip.mp4",
    "..\\..\\windows\\system.ini.mp4": None,
    "C:\\Users\\me\\Videos\\holiday.mp4": None,
    "nul\x00byte.mp4": "nulbyte.mp4",
    "\x1b[2Jescape\x07\x7f.mp4": "[2Jescape.mp4",
    "new%0D%0Aline.mp4": "new%0D%0Aline.mp4",  # how browsers send a line break in a name
    ".hidden.mp4": "hidden.mp4",
    "...": "video",
    "rtl\u202egnp.mp4": "rtlgnp.mp4",
    "%2e%2e%2fsecret.mp4": "%2e%2e%2fsecret.mp4",
    "x" * 300 + ".mp4": "x" * 200,
}


def _is_clean(name: str, longest: int = 200) -> bool:
    return (
        bool(name)
        and "/" not in name
        and "\\" not in name
        and not name.startswith(".")
        and len(name) <= longest
        and all(unicodedata.category(c)[0] != "C" for c in name)
    )


def test_path_traversal_and_control_characters_are_cleaned(
    client, auth, worker, video_bytes
) -> None:
    user = auth.login()
    uploaded = {}
    for raw in NAMES:
        response = _post(client, user, multipart(("file", raw, video_bytes)))
        assert response.status_code == 202, (raw, response.get_json())
        uploaded[raw] = response.get_json()["job_id"]
    for raw, expected in NAMES.items():
        job = _wait_for_end(client, user, uploaded[raw])
        assert job["status"] == "done", (raw, job)
        assert _is_clean(job["filename"]), (raw, job["filename"])
        if expected is not None:
            assert job["filename"] == expected, raw
        response = client.get(f"/jobs/{job['id']}/mp3", headers=user.headers)
        assert response.status_code == 200
        disposition = response.headers["Content-Disposition"]
        assert disposition.isascii() and disposition.isprintable(), disposition
        fallback = re.fullmatch(
            r'attachment; filename="([^"\\]*)"; filename\*=UTF-8\'\'(\S+)', disposition
        )
        assert fallback, disposition
        # The MP3's name is the upload's (at most 200 characters) with `.mp3` for its extension.
        assert "/" not in fallback[1] and _is_clean(unquote(fallback[2]), 204), disposition
        assert unquote(fallback[2]) == jobs.mp3_filename(job["filename"])


# --- Empty, double and missing files


def test_what_is_not_one_file_is_400_and_leaves_nothing(
    client, auth, mongo_db, video_bytes
) -> None:
    user = auth.login()
    bodies = {
        "a zero-byte file": multipart(("file", "empty.mp4", b"")),
        "two files": multipart(("file", "a.mp4", video_bytes), ("file", "b.mp4", video_bytes)),
        "two files under two names": multipart(
            ("a", "a.mp4", video_bytes), ("b", "b.mp4", video_bytes)
        ),
        "no file, only options": multipart(("bitrate", None, b"128")),
        "no part at all": multipart(),
        "a file sent as a plain field": multipart(("file", None, video_bytes)),
        "a bitrate out of range": multipart(
            ("file", "a.mp4", video_bytes), ("bitrate", None, b"1000")
        ),
        "bitrate and quality": multipart(
            ("file", "a.mp4", video_bytes), ("bitrate", None, b"128"), ("quality", None, b"2")
        ),
        "a body that ends mid-part": multipart(("file", "a.mp4", video_bytes))[:-40],
        "a preamble that never ends": b"x" * (512 * 1024),
        "part headers that never end": (
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; "
            'name="file"; filename="a.mp4"\r\nX-Pad: '
        ).encode()
        + b"y" * (512 * 1024),
        "a second part whose headers never end": multipart(("file", "a.mp4", video_bytes))[:-4]
        + b"\r\nX-Pad: "
        + b"z" * (512 * 1024),
        # A raw line break ends the part's header early: what follows is no header at all.
        "a file name broken by a line break": multipart(("file", "new\r\nline.mp4", video_bytes)),
    }
    before = stored.videos(mongo_db)
    for what, body in bodies.items():
        response = _post(client, user, body)
        assert response.status_code == 400, (what, response.get_json())
        assert response.get_json()["error"]["code"] == "bad_request"
    for what, response in {
        "no body": client.post("/upload", headers=user.headers),
        "a form that is not multipart": client.post(
            "/upload",
            headers=user.headers,
            data="file=x.mp4",
            content_type="application/x-www-form-urlencoded",
        ),
    }.items():
        assert response.status_code == 400, (what, response.get_json())
    stored.assert_no_new_videos(mongo_db, before)
    assert client.get("/jobs", headers=user.headers).get_json()["total"] == 0


def test_one_file_under_any_field_name_is_taken(client, auth, video_bytes) -> None:
    user = auth.login()
    response = _post(
        client, user, multipart(("video", "clip.mp4", video_bytes), ("note", None, b"ignored"))
    )
    assert response.status_code == 202, response.get_json()
    assert response.headers["Location"] == f"/jobs/{response.get_json()['job_id']}"


# --- Bodies past the limit, on a gateway under gunicorn


@pytest.fixture(scope="module")
def small_gateway(stack_env, run_dir):
    """A gunicorn gateway (the production server) that takes files up to SMALL_LIMIT bytes."""
    gateway = servers.Gateway(
        "gateway-small-limit", stack_env, run_dir,
        MAX_UPLOAD_BYTES=str(SMALL_LIMIT), GUNICORN_WORKERS="1",
    ).start()  # fmt: skip
    yield gateway.url, gateway.port
    gateway.stop()


def _chunks(size: int, head: bytes):
    """Yield a multipart body with a file of `size` bytes, in pieces, as a chunked upload sends."""
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"'
        "\r\nContent-Type: video/mp4\r\n\r\n"
    ).encode()
    yield head
    sent = len(head)
    while sent < size:
        piece = min(64 * 1024, size - sent)
        yield b"\0" * piece
        sent += piece
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def _chunked_upload(base: str, user, size: int, head: bytes) -> int:
    headers = {**user.headers, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    try:
        # A generator has no length, so httpx sends it with Transfer-Encoding: chunked.
        response = httpx.post(
            f"{base}/upload", content=_chunks(size, head), headers=headers, timeout=60
        )
    except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
        # The gateway answered and closed before the body was all sent; ask what it said.
        return -1
    assert response.headers.get("content-type", "").startswith("application/json")
    if response.status_code == 413:
        assert response.json()["error"]["code"] == "too_large"
    return response.status_code


def test_a_chunked_upload_within_the_limit_is_taken(small_gateway, auth, video_bytes) -> None:
    base, _ = small_gateway
    user = auth.login()
    assert _chunked_upload(base, user, len(video_bytes), video_bytes) == 202


def test_a_chunked_upload_past_the_limit_is_413_and_leaves_nothing(
    small_gateway, auth, mongo_db, client, video_bytes
) -> None:
    base, _ = small_gateway
    user = auth.login()
    before = stored.videos(mongo_db)
    for size in (SMALL_LIMIT + 1, 4 * SMALL_LIMIT, 40 * SMALL_LIMIT):
        assert _chunked_upload(base, user, size, video_bytes[:4096]) == 413, size
    time.sleep(0.5)
    stored.assert_no_new_videos(mongo_db, before)
    assert client.get("/jobs", headers=user.headers).get_json()["total"] == 0


def _request_head(user, framing: str) -> bytes:
    return (
        f"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: {user.headers['Authorization']}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"{framing}\r\nConnection: close\r\n\r\n"
    ).encode()


def _raw_request(port: int, head: bytes, body: bytes = b"") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + body)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_a_declared_length_past_the_limit_is_413_before_the_body(small_gateway, auth) -> None:
    _, port = small_gateway
    user = auth.login()
    head = _request_head(user, f"Content-Length: {100 * SMALL_LIMIT}")
    answer = _raw_request(port, head, b"--" + BOUNDARY.encode())
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b'"too_large"' in answer


def test_a_malformed_chunked_body_is_400_not_500(small_gateway, auth, mongo_db, video_bytes):
    _, port = small_gateway
    user = auth.login()
    before = stored.videos(mongo_db)
    head = _request_head(user, "Transfer-Encoding: chunked")
    part = next(iter(_chunks(0, b""))) + video_bytes[:8192]
    body = f"{len(part):x}\r\n".encode() + part + b"\r\nzz-not-a-size\r\n" + b"\0" * 100
    answer = _raw_request(port, head, body)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:300]
    assert b'"bad_request"' in answer
    time.sleep(0.5)
    stored.assert_no_new_videos(mongo_db, before)

"""mp3c, the installed console script, against the run's gateway (gunicorn) and worker."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
import uuid
from pathlib import Path

import jwt
import pytest
from bson import ObjectId

from tests.support import servers
from tests.support.media import duration_of, make_video

pytestmark = pytest.mark.e2e

MP3C = servers.VENV_BIN / "mp3c"
EXPIRED = "your login has expired; run mp3c login"


class Mp3c:
    """Run mp3c as a user would, with its config in a folder of the test's own."""

    def __init__(self, tmp_path: Path, url: str) -> None:
        self.url, self.cwd = url, tmp_path
        self.config_dir = tmp_path / "mp3c-config"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MP3C_")}
        self.env.update(MP3C_CONFIG_DIR=str(self.config_dir), COLUMNS="120")

    def __call__(
        self, *args: object, stdin: str = "", timeout: float = 120, **env: str
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(MP3C), *map(str, args)],
            input=stdin,
            capture_output=True,
            text=True,
            env={**self.env, **env},
            cwd=self.cwd,
            timeout=timeout,
        )

    def login(self, user, url: str | None = None) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def]
        return self("login", "--url", url or self.url, stdin=f"{user.email}\n{user.password}\n")

    def config(self) -> dict:
        return json.loads((self.config_dir / "config.json").read_text())


@pytest.fixture
def mp3c(tmp_path: Path, live_gateway: str, worker) -> Mp3c:  # type: ignore[no-untyped-def]
    return Mp3c(tmp_path, live_gateway)


@pytest.fixture
def user(auth):  # type: ignore[no-untyped-def]
    return auth.create()


def test_login_keeps_the_token_for_the_owner_only(mp3c: Mp3c, user) -> None:
    done = mp3c.login(user)
    assert done.returncode == 0, done.stderr
    assert f"logged in to {mp3c.url} as {user.email}" in done.stdout
    saved = mp3c.config()
    assert saved["url"] == mp3c.url and saved["email"] == user.email
    assert saved["token"].count(".") == 2
    path = mp3c.config_dir / "config.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(mp3c.config_dir.stat().st_mode) == 0o700


def test_convert_two_files_at_once_then_jobs_status_download_delete(
    mp3c: Mp3c, user, mongo_db, tmp_path: Path
) -> None:
    assert mp3c.login(user).returncode == 0
    first = make_video(tmp_path, "mp4", seconds=3, name="first.mp4")
    second = make_video(tmp_path, "webm-vp8-vorbis", seconds=2, name="second.webm")

    done = mp3c("convert", first, second, "--wait", "-o", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    assert f"first.mp4 -> {tmp_path / 'out' / 'first.mp3'}" in done.stdout
    assert f"second.webm -> {tmp_path / 'out' / 'second.mp3'}" in done.stdout
    assert abs(duration_of(tmp_path / "out" / "first.mp3") - 3.0) < 0.1
    assert abs(duration_of(tmp_path / "out" / "second.mp3") - 2.0) < 0.1

    listed = mp3c("jobs")
    assert listed.returncode == 0, listed.stderr
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert sorted((r[3], r[1]) for r in rows) == [("first.mp4", "done"), ("second.webm", "done")]
    ids = {r[3]: r[0] for r in rows}
    # At once, not one after the other: each upload was accepted before the other job ended.
    records = {name: mongo_db["jobs"].find_one({"_id": ObjectId(i)}) for name, i in ids.items()}
    assert records["first.mp4"]["created_at"] < records["second.webm"]["finished_at"]
    assert records["second.webm"]["created_at"] < records["first.mp4"]["finished_at"]
    assert json.loads(mp3c("jobs", "--json").stdout)["total"] == 2

    shown = mp3c("status", ids["first.mp4"])
    assert shown.returncode == 0, shown.stderr
    assert "status   done" in shown.stdout and "mp3      3.0 s" in shown.stdout
    assert json.loads(mp3c("status", ids["first.mp4"], "--json").stdout)["progress"] == 100

    fetched = mp3c("download", ids["first.mp4"], "-o", tmp_path / "again.mp3")
    assert fetched.returncode == 0, fetched.stderr
    assert (tmp_path / "again.mp3").read_bytes() == (tmp_path / "out" / "first.mp3").read_bytes()
    (tmp_path / "folder").mkdir()
    assert mp3c("download", ids["second.webm"], "-o", tmp_path / "folder").returncode == 0
    assert (tmp_path / "folder" / "second.mp3").exists()

    deleted = mp3c("delete", ids["first.mp4"])
    assert deleted.returncode == 0 and f"deleted job {ids['first.mp4']}" in deleted.stdout
    gone = mp3c("status", ids["first.mp4"])
    assert gone.returncode == 1 and "mp3c: no such job" in gone.stderr


def test_convert_without_wait_prints_the_job(mp3c: Mp3c, user, tmp_path: Path) -> None:
    assert mp3c.login(user).returncode == 0
    video = make_video(tmp_path, "mp4", seconds=2, name="later.mp4")
    done = mp3c("convert", video, "--bitrate", "96")
    assert done.returncode == 0, done.stderr
    assert "later.mp4 -> job " in done.stdout and "mp3c status" in done.stdout


def test_wrong_password(mp3c: Mp3c, user) -> None:
    user.password = "not the password at all"
    done = mp3c.login(user)
    assert done.returncode == 3
    assert done.stderr.strip() == "mp3c: wrong email or password"
    assert not (mp3c.config_dir / "config.json").exists()


def test_expired_token_says_to_log_in_again(mp3c: Mp3c, user, stack_env, tmp_path) -> None:
    assert mp3c.login(user).returncode == 0
    saved = mp3c.config()
    claims = jwt.decode(
        saved["token"], stack_env["JWT_SECRET"], algorithms=["HS256"], audience="mp3-converter-api"
    )
    past = int(time.time()) - 3600
    claims.update(iat=past - 60, nbf=past - 60, exp=past, jti=uuid.uuid4().hex)
    saved["token"] = jwt.encode(claims, stack_env["JWT_SECRET"], algorithm="HS256")
    (mp3c.config_dir / "config.json").write_text(json.dumps(saved))

    for args in (["jobs"], ["status", "0123456789abcdef01234567"]):
        done = mp3c(*args)  # The server refuses the token.
        assert done.returncode == 3, done.stderr
        assert done.stderr.strip() == f"mp3c: {EXPIRED}"
    video = make_video(tmp_path, "mp4", seconds=2)
    done = mp3c("convert", video, "--wait")  # Refused before anything is uploaded.
    assert done.returncode == 3 and done.stderr.strip() == f"mp3c: {EXPIRED}"


def test_not_logged_in(mp3c: Mp3c) -> None:
    done = mp3c("jobs")
    assert done.returncode == 3
    assert done.stderr.strip() == "mp3c: you are not logged in; run mp3c login"


def test_server_down(mp3c: Mp3c, user) -> None:
    closed = f"http://127.0.0.1:{servers.free_port()}"
    done = mp3c.login(user, url=closed)
    assert done.returncode == 4
    assert done.stderr.strip() == f"mp3c: cannot reach the server at {closed} (connection refused)"
    assert mp3c.login(user).returncode == 0
    done = mp3c("jobs", MP3C_URL=closed)
    assert done.returncode == 4 and "cannot reach the server" in done.stderr


def test_server_errors_are_printed(mp3c: Mp3c, user, tmp_path: Path) -> None:
    assert mp3c.login(user).returncode == 0
    text = tmp_path / "notes.txt"
    text.write_text("not a video\n" * 100)
    silent = make_video(tmp_path, "mp4", seconds=2, audio=False)

    done = mp3c("convert", text, silent, "--wait")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()[-2:]
    assert lines[0] == "mp3c: notes.txt: this is not a video or audio file we can convert"
    assert lines[1].startswith(f"mp3c: {silent.name}: the conversion failed: ")
    assert "audio" in lines[1]


def test_usage_errors(mp3c: Mp3c, user, tmp_path: Path) -> None:
    assert mp3c.login(user).returncode == 0
    missing = mp3c("convert", tmp_path / "missing.mp4")
    assert missing.returncode == 2 and "not a file that can be read" in missing.stderr
    video = make_video(tmp_path, "mp4", seconds=2)
    bad = mp3c("convert", video, "--bitrate", "5")
    assert bad.returncode == 2 and "must be a whole number from 32 to 320" in bad.stderr
    both = mp3c("convert", video, "--bitrate", "128", "--quality", "2")
    assert both.returncode == 2 and "not allowed with" in both.stderr
    helped = mp3c("--help")
    assert helped.returncode == 0 and "exit codes:" in helped.stdout

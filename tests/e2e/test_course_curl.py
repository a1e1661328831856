"""The course's own curl commands work unchanged against the gateway under gunicorn."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.support.media import duration_of, make_video
from tests.support.servers import wait_until

pytestmark = pytest.mark.e2e


def curl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [shutil.which("curl") or "curl", "-s", *args], capture_output=True, timeout=60
    )


def test_the_course_curl_session(live_gateway, worker, auth, tmp_path):
    import httpx

    user = auth.create()
    # curl -X POST http://mp3converter.com/login -u <email>:<password>
    login = curl("-X", "POST", f"{live_gateway}/login", "-u", f"{user.email}:{user.password}")
    token = login.stdout.decode()
    assert token.count(".") == 2, login
    # curl -X POST -F 'file=@./video.mkv' -H 'Authorization: Bearer <JWT>' http://.../upload
    video = make_video(tmp_path, "mkv-mp3", seconds=2, name="video.mkv")
    upload = subprocess.run(
        [
            "curl",
            "-s",
            "-X",
            "POST",
            "-F",
            f"file=@{video}",
            "-H",
            f"Authorization: Bearer {token}",
            f"{live_gateway}/upload",
        ],
        capture_output=True,
        timeout=60,
        cwd=tmp_path,
    )
    job_id = httpx.Response(202, content=upload.stdout).json()["job_id"]
    headers = {"Authorization": f"Bearer {token}"}
    job = wait_until(
        lambda: (
            (j := httpx.get(f"{live_gateway}/jobs/{job_id}", headers=headers).json())["status"]
            in ("done", "failed")
            and j
        ),
        timeout=60,
        what="the conversion",
    )
    assert job["status"] == "done"
    # curl --output mp3_download.mp3 -X GET -H 'Authorization: Bearer <JWT>' "http://.../download?fid=<id>"
    out = tmp_path / "mp3_download.mp3"
    download = curl(
        "--output",
        str(out),
        "-X",
        "GET",
        "-H",
        f"Authorization: Bearer {token}",
        f"{live_gateway}/download?fid={job['mp3']['id']}",
    )
    assert download.returncode == 0
    assert abs(duration_of(out) - duration_of(video)) <= 0.1

import pytest

from tests.support.media import duration_of, make_video
from tests.support.servers import wait_until

pytestmark = pytest.mark.e2e


def test_upload_convert_download(client, auth, worker, smtp_server, tmp_path):
    user = auth.login()
    video = make_video(tmp_path, "mp4")
    with video.open("rb") as fh:
        r = client.post("/upload", headers=user.headers, data={"file": (fh, "clip.mp4")})
    assert r.status_code == 202, r.get_json()
    job_id = r.get_json()["job_id"]
    job = wait_until(lambda: (j := client.get(f"/jobs/{job_id}", headers=user.headers).get_json())["status"] in ("done", "failed") and j,
                     timeout=60, what="the job to end")
    assert job["status"] == "done", job
    r = client.get(f"/jobs/{job_id}/mp3", headers=user.headers)
    assert r.status_code == 200
    out = tmp_path / "out.mp3"
    out.write_bytes(r.data)
    assert abs(duration_of(out) - 3.0) < 0.1
    wait_until(lambda: smtp_server.inbox.for_job(job_id), timeout=30, what="the email")

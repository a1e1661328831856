"""Downloads, ownership, ranges, cancelling, and what the upload limits leave behind."""

from __future__ import annotations

import os
import time
import uuid

import httpx
import psutil
import pytest
from bson import ObjectId

from tests.support import servers, stored
from tests.support.media import make_video
from tests.support.servers import wait_until
from tests.support.stack import Stack, processes_named

pytestmark = pytest.mark.e2e


@pytest.fixture
def done_job(jobs_api, auth, tmp_path):
    user = auth.login()
    job_id = jobs_api.submit(user, make_video(tmp_path, "mp4", seconds=3), name="talk.mp4")
    job = jobs_api.wait(user, job_id)
    assert job["status"] == "done"
    return user, job


def test_another_user_gets_404_on_the_job_its_mp3_and_the_course_download(done_job, auth, client):
    owner, job = done_job
    stranger = auth.login()
    for path in (
        f"/jobs/{job['id']}",
        f"/jobs/{job['id']}/mp3",
        f"/download?fid={job['mp3']['id']}",
    ):
        response = client.get(path, headers=stranger.headers)
        assert response.status_code == 404, path
        assert response.get_json()["error"]["code"] == "not_found"
    assert client.delete(f"/jobs/{job['id']}", headers=stranger.headers).status_code == 404
    assert job["id"] not in {
        j["id"] for j in client.get("/jobs", headers=stranger.headers).get_json()["jobs"]
    }
    # The owner still has everything.
    assert client.get(f"/download?fid={job['mp3']['id']}", headers=owner.headers).status_code == 200
    assert client.get(f"/jobs/{job['id']}", headers=owner.headers).get_json()["status"] == "done"


def test_download_by_fid_as_the_course_does(done_job, client):
    user, job = done_job
    whole = client.get(f"/download?fid={job['mp3']['id']}", headers=user.headers)
    assert whole.status_code == 200 and whole.mimetype == "audio/mpeg"
    assert len(whole.data) == job["mp3"]["bytes"]
    for fid in ("", "nonsense", "0" * 24, "../../etc/passwd"):
        assert client.get(f"/download?fid={fid}", headers=user.headers).status_code == 404


def test_range_requests_return_the_right_bytes(done_job, client):
    user, job = done_job
    url = f"/jobs/{job['id']}/mp3"
    whole = client.get(url, headers=user.headers)
    etag = whole.headers["ETag"]
    assert whole.headers["Accept-Ranges"] == "bytes"
    assert 'filename="talk.mp3"' in whole.headers["Content-Disposition"]

    part = client.get(url, headers={**user.headers, "Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.data == whole.data[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(whole.data)}"

    tail = client.get(url, headers={**user.headers, "Range": "bytes=-50"})
    assert tail.status_code == 206 and tail.data == whole.data[-50:]

    beyond = client.get(url, headers={**user.headers, "Range": f"bytes={len(whole.data) + 10}-"})
    assert beyond.status_code == 416

    unchanged = client.get(url, headers={**user.headers, "If-None-Match": etag})
    assert unchanged.status_code == 304


def test_list_is_newest_first_and_paginated(jobs_api, auth, client, tmp_path):
    user = auth.login()
    video = make_video(tmp_path, "mkv-mp3", seconds=1)
    ids = [jobs_api.submit(user, video, name=f"{i}.mkv") for i in range(3)]
    page1 = client.get("/jobs?per_page=2", headers=user.headers).get_json()
    assert [j["id"] for j in page1["jobs"]] == ids[::-1][:2]
    assert page1["total"] == 3 and page1["next"] == "/jobs?page=2&per_page=2"
    page2 = client.get(page1["next"], headers=user.headers).get_json()
    assert [j["id"] for j in page2["jobs"]] == ids[:1] and page2["next"] is None
    assert client.get("/jobs?per_page=1000", headers=user.headers).status_code == 400
    for job_id in ids:
        jobs_api.wait(user, job_id)


def test_deleting_a_finished_job_removes_it_and_its_mp3(done_job, client, mongo_db):
    user, job = done_job
    assert client.delete(f"/jobs/{job['id']}", headers=user.headers).status_code == 204
    assert client.get(f"/jobs/{job['id']}", headers=user.headers).status_code == 404
    # The API gives the id as a string; GridFS stores an ObjectId.
    mp3_id = ObjectId(job["mp3"]["id"])
    assert mongo_db["mp3s.files"].count_documents({"_id": mp3_id}) == 0
    assert mongo_db["mp3s.chunks"].count_documents({"files_id": mp3_id}) == 0


def test_an_upload_over_the_limit_is_413_and_leaves_nothing(app, auth, client, mongo_db, settings):
    import dataclasses

    from app import create_app

    small = create_app(
        {"TESTING": True}, settings=dataclasses.replace(settings, max_upload_bytes=200_000)
    )
    small_client = small.test_client()
    user = auth.login()
    before = stored.videos(mongo_db)
    big = b"\x00\x00\x00\x18ftypisom" + os.urandom(300_000)
    import io

    response = small_client.post(
        "/upload", headers=user.headers, data={"file": (io.BytesIO(big), "big.mp4")}
    )
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "too_large"
    stored.assert_no_new_videos(mongo_db, before)
    assert mongo_db["jobs"].count_documents({"owner_email": user.email}) == 0


# --- Through a stack of its own: a slow ffmpeg to cancel, and the gateway's memory ----------


@pytest.fixture(scope="module")
def slow_stack(stack_env, run_dir):
    with servers.rabbitmq_vhost() as broker:
        db = f"files{uuid.uuid4().hex[:6]}"
        mongo_uri = stack_env["MONGODB_URI"].replace("/mp3?", f"/{db}?")
        stack = Stack("files", stack_env, run_dir, CELERY_BROKER_URL=broker, MONGODB_URI=mongo_uri)
        stack.start_gateway()
        stack.start_worker(concurrency=1)
        yield stack
        stack.stop()


def test_cancel_during_conversion_kills_ffmpeg(slow_stack, tmp_path):
    headers = slow_stack.user()
    video = make_video(tmp_path, "mkv-mp3", seconds=30, title="MP3TEST:SLOW;")
    job_id = slow_stack.upload(headers, video).json()["job_id"]
    slow_stack.wait_status(headers, job_id, ("converting",))
    wait_until(
        lambda: slow_stack.job(headers, job_id)["progress"] > 0,
        timeout=30,
        what="progress to be reported",
    )
    running = [
        p for p in processes_named(str(slow_stack.dir / "tmp")) if "-progress" in p.cmdline()
    ]
    assert running, "ffmpeg should be converting the job"
    response = httpx.delete(f"{slow_stack.url}/jobs/{job_id}", headers=headers)
    assert response.status_code == 204
    assert slow_stack.job(headers, job_id)["status"] == "cancelled"
    _, alive = psutil.wait_procs(running, timeout=10)
    assert not alive, "ffmpeg must be killed when its job is cancelled"
    db = slow_stack.mongo()
    wait_until(
        lambda: (
            db["mp3s.files"].count_documents({}) == 0
            and not list((slow_stack.dir / "tmp").glob("mp3-job-*"))
        ),
        timeout=10,
        what="files to be removed",
    )
    assert db["videos.files"].count_documents({}) == 0


def _peak_rss_growth(stack, headers, size: int) -> int:
    """Upload `size` bytes (a chunked body made on the fly) and return the gateway's RSS growth."""
    gateway = psutil.Process(stack.gateway.proc.pid)

    def tree_rss() -> int:
        return sum(p.memory_info().rss for p in [gateway, *gateway.children(recursive=True)])

    start = tree_rss()
    peak = start
    header = b"\x00\x00\x00\x18ftypisom"
    block = os.urandom(1 << 20)

    def body():
        nonlocal peak
        yield header
        sent = len(header)
        while sent < size:
            piece = block[: min(len(block), size - sent)]
            sent += len(piece)
            yield piece
            peak = max(peak, tree_rss())

    boundary = "memtestboundary"

    def multipart():
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="big.mp4"\r\nContent-Type: video/mp4\r\n\r\n'
        ).encode()
        yield from body()
        yield f"\r\n--{boundary}--\r\n".encode()

    response = httpx.post(
        f"{stack.url}/upload",
        content=multipart(),
        timeout=120,
        headers={**headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 202, response.text
    time.sleep(0.2)
    return max(peak, tree_rss()) - start


def test_gateway_memory_does_not_grow_with_the_upload(slow_stack):
    headers = slow_stack.user()
    small = _peak_rss_growth(slow_stack, headers, 1 << 20)
    large = _peak_rss_growth(slow_stack, headers, 200 << 20)
    assert large - small < 50 << 20, (
        f"RSS grew by {large >> 20} MiB for 200 MB vs {small >> 20} MiB for 1 MB"
    )

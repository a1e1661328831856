"""Break things on purpose: killed workers, a restarted broker, SMTP and MongoDB going away.

Every test asserts what a user would notice: each accepted job ends with exactly one MP3 and
exactly one email, a refused upload leaves nothing behind, and nothing waits forever.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import psutil
import pytest
from bson import ObjectId

from tests.chaos.conftest import ffmpeg_processes, pool_children, queue_counts, sigkill
from tests.support import servers
from tests.support.media import make_video
from tests.support.servers import wait_until

pytestmark = pytest.mark.chaos


def _one_mp3_each(stack, job_ids: list[str]) -> None:
    db = stack.mongo()
    for job_id in job_ids:
        oid = ObjectId(job_id)
        assert db["mp3s.files"].count_documents({"_id": oid}) == 1, job_id
        chunks = db["mp3s.chunks"].count_documents({"files_id": oid})
        length = db["mp3s.files"].find_one({"_id": oid})["length"]
        assert chunks == -(-length // (1024 * 1024)), "no stray chunks of an earlier attempt"


def _one_email_each(smtp_server, job_ids: list[str], timeout: float = 60) -> None:
    for job_id in job_ids:
        wait_until(
            lambda j=job_id: smtp_server.inbox.for_job(j),
            timeout=timeout,
            what=f"the email of {job_id}",
        )
    time.sleep(2)  # A duplicate would arrive within this.
    for job_id in job_ids:
        assert len(smtp_server.inbox.for_job(job_id)) == 1, job_id


def test_sigkill_mid_conversion_ten_times_loses_and_duplicates_nothing(
    chaos, smtp_server, tmp_path
):
    headers = chaos.user()
    video = make_video(tmp_path, "mkv-mp3", seconds=4, title="MP3TEST:SLOW;")
    # More jobs than kills: a job that slips by while a worker restarts is simply not killed.
    job_ids = [chaos.upload(headers, video).json()["job_id"] for _ in range(14)]
    db = chaos.mongo()
    killed: list[str] = []

    def fresh_conversion():
        # A killed job's message is requeued at the head of the queue; kill each job once only,
        # so that none reaches the poison limit.
        running = ffmpeg_processes(chaos)
        job = db.jobs.find_one(
            {
                "status": "converting",
                "progress": {"$gt": 0},
                "_id": {"$nin": [ObjectId(j) for j in killed]},
            }
        )
        return (running, str(job["_id"])) if running and job else None

    for round_ in range(10):
        # Kill what runs the conversion: the pool process on even rounds, the whole worker
        # (main process and all) on odd ones, as a dying machine would.
        running, job_id = wait_until(fresh_conversion, timeout=90, what="a fresh conversion")
        worker = chaos.workers["w1"]
        if round_ % 2 == 0:
            for child in pool_children(worker):
                sigkill(child)
        else:
            worker.kill()
            worker.start_worker()
        killed.append(job_id)
        _, alive = psutil.wait_procs(running, timeout=10)
        assert not alive, "ffmpeg dies with the process that started it"
    assert len(set(killed)) == 10 and set(killed) <= set(job_ids)
    for job_id in job_ids:
        job = chaos.wait_status(headers, job_id, ("done", "failed"), timeout=180)
        assert job["status"] == "done", job
    _one_mp3_each(chaos, job_ids)
    _one_email_each(smtp_server, job_ids)


def test_sigkill_after_the_mp3_is_stored_and_before_the_ack(chaos, smtp_server, tmp_path):
    headers = chaos.user()
    db = chaos.mongo()
    video = make_video(tmp_path, "mkv-mp3", seconds=2, title="MP3TEST:SLOW;")
    for _attempt in range(5):
        job_id = chaos.upload(headers, video).json()["job_id"]
        oid = ObjectId(job_id)
        [ffmpeg] = wait_until(lambda: ffmpeg_processes(chaos), timeout=60, what="the conversion")
        child = ffmpeg.parent()
        # Freeze the pool process the moment the MP3's file document exists: it has stored the
        # MP3 and cannot have acknowledged the message yet.
        while not db["mp3s.files"].find_one({"_id": oid}, {"_id": 1}):
            pass
        os.kill(child.pid, signal.SIGSTOP)
        unacked = queue_counts(chaos.vhost).get("convert", (0, 0))[1]
        chaos.workers["w1"].kill()
        sigkill(child)
        chaos.workers["w1"].start_worker()
        if unacked == 1:
            break
        chaos.wait_status(headers, job_id, ("done",))  # Missed the window; try again.
    else:
        pytest.fail("never froze the worker between storing the MP3 and acknowledging")
    job = chaos.wait_status(headers, job_id, ("done", "failed"))
    assert job["status"] == "done"
    _one_mp3_each(chaos, [job_id])
    _one_email_each(smtp_server, [job_id])


def test_a_poison_video_is_retried_a_bounded_number_of_times_then_dead_lettered(
    chaos, smtp_server, tmp_path
):
    headers = chaos.user()
    poison = make_video(tmp_path, "mkv-mp3", seconds=2, title="MP3TEST:KILLWORKER;")
    job_id = chaos.upload(headers, poison).json()["job_id"]
    job = chaos.wait_status(headers, job_id, ("done", "failed"), timeout=120)
    assert job["status"] == "failed"
    assert "cannot be converted" in job["error"]
    [email] = wait_until(lambda: smtp_server.inbox.for_job(job_id), timeout=30, what="the email")
    assert "cannot be converted" in email.get_body(("plain",)).get_content()
    wait_until(
        lambda: queue_counts(chaos.vhost).get("convert.dead", (0, 0))[0] == 1,
        timeout=20,
        what="the message to be dead-lettered",
    )
    time.sleep(2)
    assert queue_counts(chaos.vhost)["convert"] == (0, 0), "no loop remains"
    # The worker goes on with other work.
    good = chaos.upload(headers, make_video(tmp_path, "mp4", seconds=1)).json()["job_id"]
    assert chaos.wait_status(headers, good, ("done", "failed"))["status"] == "done"


def test_failing_and_hanging_files_never_block_the_jobs_behind_them(chaos, tmp_path):
    headers = chaos.user()
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"\x00\x00\x00\x18ftypisom" + b"garbage " * 1000)
    hang = make_video(tmp_path, "mkv-mp3", seconds=2, title="MP3TEST:HANG;", name="hang.mkv")
    crash = make_video(tmp_path, "mkv-mp3", seconds=2, title="MP3TEST:CRASH;", name="crash.mkv")
    good = make_video(tmp_path, "mp4", seconds=1)
    bad_ids = [chaos.upload(headers, path).json()["job_id"] for path in (fake, hang, crash)]
    good_ids = [chaos.upload(headers, good).json()["job_id"] for _ in range(2)]
    for job_id in good_ids:
        assert (
            chaos.wait_status(headers, job_id, ("done", "failed"), timeout=120)["status"] == "done"
        )
    reasons = [
        chaos.wait_status(headers, j, ("done", "failed"), timeout=60)["error"] for j in bad_ids
    ]
    assert "not a media file" in reasons[0]
    assert "longer than 10 s" in reasons[1], "a hanging ffmpeg is stopped at the time limit"
    assert "cannot be converted" in reasons[2] or "killed by signal" in reasons[2]
    assert not ffmpeg_processes(chaos)


def test_smtp_down_for_a_while_then_every_email_goes_once(chaos, smtp_server, tmp_path):
    headers = chaos.user()
    smtp_server.stop()
    try:
        video = make_video(tmp_path, "mp4", seconds=1)
        job_ids = [chaos.upload(headers, video).json()["job_id"] for _ in range(3)]
        for job_id in job_ids:
            assert chaos.wait_status(headers, job_id, ("done", "failed"))["status"] == "done"
        db = chaos.mongo()
        wait_until(
            lambda: all(
                db.jobs.find_one({"_id": ObjectId(j)})["notification"]["state"] == "retrying"
                for j in job_ids
            ),
            timeout=30,
            what="retries",
        )
        time.sleep(3)
    finally:
        smtp_server.start()
    _one_email_each(smtp_server, job_ids, timeout=90)


def test_mongodb_unreachable_gives_503_and_work_resumes(chaos, tmp_path):
    headers = chaos.user()
    video = make_video(tmp_path, "mp4", seconds=1)
    chaos.mongo_server.stop()
    try:
        started = time.monotonic()
        response = chaos.upload(headers, video, timeout=30)
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "storage_unavailable"
        assert time.monotonic() - started < 10
        ready = httpx.get(f"{chaos.url}/readyz", timeout=5)
        assert ready.status_code == 503 and "mongodb" in ready.json()["error"]["message"]
        assert chaos.gateway.proc.poll() is None and chaos.workers["w1"].proc.poll() is None
    finally:
        chaos.mongo_server.start()
    wait_until(
        lambda: httpx.get(f"{chaos.url}/readyz", timeout=5).status_code == 200,
        timeout=30,
        what="readiness to return",
    )
    job_id = chaos.upload(headers, video).json()["job_id"]
    assert chaos.wait_status(headers, job_id, ("done", "failed"))["status"] == "done"


def test_mongodb_lost_between_storing_the_video_and_recording_the_job(
    stack_env, run_dir, tmp_path, monkeypatch
):
    """The 503 comes within one server-selection timeout, and the sweep removes the video."""
    from app import create_app
    from app.gateway import upload
    from core import jobs, mongo
    from core.settings import load_settings
    from tasks.maintenance import remove_leftover_videos
    from tests.conftest import AuthActions

    own = servers.MongoServer(run_dir / "lost-mongo").start()
    try:
        settings = load_settings({**stack_env, "MONGODB_URI": own.uri})
        app = create_app({"TESTING": True}, settings=settings)
        client = app.test_client()
        user = AuthActions(app, client).login()
        record = jobs.create

        def record_after_mongodb_went_away(*args, **kwargs):  # type: ignore[no-untyped-def]
            own.stop()
            return record(*args, **kwargs)

        monkeypatch.setattr(upload.jobs, "create", record_after_mongodb_went_away)
        video = make_video(tmp_path, "mp4", seconds=1)
        started = time.monotonic()
        with video.open("rb") as fh:
            response = client.post("/upload", headers=user.headers, data={"file": (fh, video.name)})
        seconds = time.monotonic() - started
        assert response.status_code == 503, response.get_data(as_text=True)
        assert response.get_json()["error"]["code"] == "storage_unavailable"
        # One 3 s server-selection timeout; removing the video as well would double it.
        assert seconds < 5.5, seconds
        monkeypatch.undo()

        own.start()
        db = mongo.database(settings.mongodb_uri, settings.mongodb_database)
        [left] = list(db["videos.files"].find())
        assert db.jobs.count_documents({"_id": left["_id"]}) == 0
        assert remove_leftover_videos(db, keep=False, grace=timedelta(0)) == 1
        assert db["videos.files"].count_documents({}) == 0
        assert db["videos.chunks"].count_documents({}) == 0
    finally:
        own.stop()


def test_rabbitmq_restart_during_50_uploads(chaos, tmp_path):
    headers = chaos.user()
    video = make_video(tmp_path, "mp4", seconds=1)
    db = chaos.mongo()
    results: list[tuple[int, float, str | None]] = []
    lock = threading.Lock()

    def one(_: int) -> None:
        started = time.monotonic()
        try:
            response = chaos.upload(headers, video, timeout=30)
            status, body = response.status_code, response.json()
        except httpx.HTTPError:
            status, body = 599, {}
        with lock:
            results.append((status, time.monotonic() - started, body.get("job_id")))

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(one, i) for i in range(50)]
        time.sleep(1)
        subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True, timeout=60)
        time.sleep(3)
        subprocess.run(["rabbitmqctl", "start_app"], check=True, capture_output=True, timeout=120)
        for future in futures:
            future.result()
    accepted = [job_id for status, _, job_id in results if status == 202]
    refused = [(status, seconds) for status, seconds, _ in results if status != 202]
    assert len(results) == 50 and accepted
    for status, seconds in refused:
        assert status >= 500 and seconds < 10, (status, seconds)
    for job_id in accepted:
        assert (
            chaos.wait_status(headers, job_id, ("done", "failed"), timeout=180)["status"] == "done"
        )
    # A refused upload left neither a video nor a job.
    assert (
        db.jobs.count_documents(
            {
                "owner_email": {"$regex": "^chaos-"},
                "_id": {"$nin": [ObjectId(j) for j in accepted]},
                "created_at": {
                    "$gt": db.jobs.find_one({"_id": ObjectId(accepted[0])})["created_at"].replace(
                        year=2000
                    )
                },
            }
        )
        >= 0
    )
    jobs_of_user = {
        str(j["_id"])
        for j in db.jobs.find(
            {"owner_email": db.jobs.find_one({"_id": ObjectId(accepted[0])})["owner_email"]}
        )
    }
    assert jobs_of_user == set(accepted)
    # Every video goes once its job's email is out.
    wait_until(
        lambda: db["videos.files"].count_documents({}) == 0,
        timeout=60,
        what="every converted video to be deleted",
    )


def test_no_ffmpeg_or_temporary_file_remains_after_20_jobs(chaos, tmp_path):
    headers = chaos.user()
    good = make_video(tmp_path, "mp4", seconds=1)
    slow = make_video(tmp_path, "mkv-mp3", seconds=20, title="MP3TEST:SLOW;", name="slow.mkv")
    silent = make_video(tmp_path, "mp4", seconds=1, audio=False)
    ids = []
    for i in range(20):
        path = (good, silent, slow, good)[i % 4]
        ids.append(chaos.upload(headers, path).json()["job_id"])
    for i, job_id in enumerate(ids):
        if i % 4 == 2:
            chaos.wait_status(headers, job_id, ("converting", "done", "failed"), timeout=120)
            httpx.delete(f"{chaos.url}/jobs/{job_id}", headers=headers)
    statuses = [
        chaos.wait_status(headers, j, ("done", "failed", "cancelled"), timeout=180)["status"]
        for j in ids
    ]
    assert set(statuses) == {"done", "failed", "cancelled"}
    time.sleep(1)
    assert not ffmpeg_processes(chaos)
    assert not list((chaos.dir / "tmp").glob("mp3-job-*"))

"""One email per job outcome: duplicates are absorbed, permanent refusals are recorded."""

from __future__ import annotations

import io
import time
from functools import partial

import pytest
from bson import ObjectId

from tests.support import stored
from tests.support.media import make_video
from tests.support.servers import wait_until

pytestmark = pytest.mark.e2e


def _runs_that_sent_nothing(worker, job_id: str) -> int:
    return sum(
        1 for line in worker.log().splitlines() if "no email to send" in line and job_id in line
    )


def test_running_notify_again_sends_no_second_email(jobs_api, auth, smtp_server, worker, tmp_path):
    from tasks.notify import notify

    user = auth.login()
    job_id = jobs_api.submit(user, make_video(tmp_path, "mp4", seconds=1))
    assert jobs_api.wait(user, job_id)["status"] == "done"
    wait_until(lambda: smtp_server.inbox.for_job(job_id), timeout=30, what="the email")
    # The same message delivered twice more (a redelivery, a retried chain).
    notify.apply_async((job_id,))
    notify.apply_async((job_id,))
    wait_until(
        lambda: _runs_that_sent_nothing(worker, job_id) == 2,
        timeout=30,
        what="both extra runs of notify to finish",
    )
    assert len(smtp_server.inbox.for_job(job_id)) == 1


def test_notify_deletes_the_video_after_the_email_even_when_run_again(
    jobs_api, auth, smtp_server, mongo_db, tmp_path
):
    # The worker that sent the email may die before deleting the video: the redelivered notify
    # sends nothing more, but deletes it.
    from core import mongo
    from tasks.notify import notify

    user = auth.login()
    job_id = jobs_api.submit(user, make_video(tmp_path, "mp4", seconds=1))
    assert jobs_api.wait(user, job_id)["status"] == "done"
    wait_until(lambda: smtp_server.inbox.for_job(job_id), timeout=30, what="the email")
    oid = ObjectId(job_id)
    video_gone = partial(stored.video_gone, mongo_db, oid)
    wait_until(video_gone, timeout=30, what="the video to be deleted after the email")
    mongo.videos(mongo_db).upload_from_stream_with_id(oid, "left.mp4", io.BytesIO(b"left"))
    notify.apply_async((job_id,))
    wait_until(video_gone, timeout=30, what="the redelivered notify to delete the video")
    assert len(smtp_server.inbox.for_job(job_id)) == 1
    assert mongo_db["mp3s.files"].count_documents({"_id": oid}) == 1


def test_a_permanent_smtp_refusal_is_recorded_on_the_job(jobs_api, auth, mongo_db, tmp_path):
    user = auth.login(auth.create(email=f"bounce-{time.time_ns()}@example.test"))
    job_id = jobs_api.submit(user, make_video(tmp_path, "mp4", seconds=1))
    assert jobs_api.wait(user, job_id)["status"] == "done"

    def notification() -> dict | None:
        state = mongo_db.jobs.find_one({"_id": ObjectId(job_id)})["notification"]
        return state if state["state"] == "failed" else None

    state = wait_until(notification, timeout=30, what="the refusal to be recorded")
    assert "550" in state["error"] and state["attempts"] == 1, "a 5xx is not retried"

"""One JSON object per line from the gateway and the worker; one job followed with one grep."""

from __future__ import annotations

import logging

import pytest

from tests.observability.conftest import LiveUser, json_lines
from tests.support.media import make_video
from tests.support.servers import wait_until

pytestmark = pytest.mark.e2e

#: Celery prints these with os.write from its signal handler, never through logging.
CELERY_SHUTDOWN_NOTICES = ("worker: Warm shutdown", "worker: Cold shutdown")


def lines_of(process) -> list[dict]:  # type: ignore[no-untyped-def]
    return json_lines(process.log_path, ignore=CELERY_SHUTDOWN_NOTICES)


def test_a_jobs_lines_from_gateway_and_worker_share_its_job_id(
    live_gateway, worker, auth, smtp_server, tmp_path
):
    from tests.conftest import live_gateway_process

    gateway = live_gateway_process[0]
    user = LiveUser(live_gateway, auth)
    response = user.upload(make_video(tmp_path, "mp4", seconds=2))
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    assert user.wait(job_id)["status"] == "done"
    wait_until(lambda: smtp_server.inbox.for_job(job_id), timeout=30, what="the email")
    convert, notify = f"{job_id}-convert", f"{job_id}-notify"

    def worker_lines() -> list[dict] | None:
        found = [r for r in lines_of(worker) if r.get("job_id") == job_id]
        done = sum("succeeded" in r["message"] for r in found) >= 2
        return found if done else None

    # Every line of both processes is a JSON object (json_lines fails on any other line).
    ours = wait_until(worker_lines, timeout=20, what="the worker's lines about the job")
    from_gateway = [r for r in lines_of(gateway) if r.get("job_id") == job_id]

    # The gateway: the upload's own line and its request line, each with the job id.
    messages = [r["message"] for r in from_gateway]
    assert "upload accepted" in messages
    upload_request = next(
        r for r in from_gateway if r["message"] == "request" and r["route"] == "/upload"
    )
    assert upload_request["status"] == 202 and upload_request["method"] == "POST"
    assert upload_request["request_id"] and upload_request["duration_ms"] >= 0
    assert any(r["message"] == "request" and r["route"] == "/jobs/<job_id>" for r in from_gateway)

    # The worker: Celery's own lines (received, succeeded) and the tasks' lines, for both tasks.
    for task_id in (convert, notify):
        theirs = [r for r in ours if r.get("task_id") == task_id]
        assert any("received" in r["message"] for r in theirs), (task_id, theirs)
        assert any("succeeded" in r["message"] for r in theirs), (task_id, theirs)
    assert any(r["message"] == "converted" and r["task_id"] == convert for r in ours)
    assert any(r["message"] == "emailed" and r["task_id"] == notify for r in ours)
    # Task lines come from the pool's child processes, Celery's "received" from the main one.
    assert len({r["pid"] for r in ours}) >= 2

    # The grep: any line that mentions the job carries its job_id, and a task line its task_id.
    for process in (gateway, worker):
        for record in lines_of(process):
            if job_id in str(record):
                assert record.get("job_id") == job_id, record
    for record in ours:
        if record["logger"].startswith(("tasks.", "celery.app.trace")):
            assert record.get("task_id") in (convert, notify), record


def test_a_request_does_not_leave_its_job_id_to_the_next_one(client, auth, caplog):
    user = auth.login()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="app.request"):
        client.get("/jobs/0123456789abcdef01234567", headers=user.headers)
        client.get("/jobs", headers=user.headers)
    first, second = (r for r in caplog.records if r.name == "app.request")
    assert first.job_id == "0123456789abcdef01234567"
    assert first.status == 404
    assert not hasattr(second, "job_id") and second.route == "/jobs"
    assert first.request_id != second.request_id

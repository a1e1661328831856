"""The periodic sweep removes expired MP3s, left-over videos, orphaned GridFS chunks and stale
temporary folders."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from bson import ObjectId

from core import jobs, mongo
from tests.security import seed
from tests.support.servers import wait_until

pytestmark = pytest.mark.integration


def test_the_sweep_removes_what_is_stale_and_keeps_what_is_not(mongo_db, worker, stack_env):
    from tasks.maintenance import sweep

    bucket = mongo.mp3s(mongo_db)
    old_job, new_job = (seed.job_record(mongo_db, 1, "sweep@example.test") for _ in range(2))
    for oid, age in ((old_job, 8), (new_job, 1)):
        bucket.upload_from_stream_with_id(oid, "a.mp3", io.BytesIO(b"\xff\xfb" * 1000))
        jobs.collection(mongo_db).update_one(
            {"_id": oid},
            {
                "$set": {
                    "status": "done",
                    "mp3": {"id": oid, "bytes": 2000, "duration_seconds": 1.0},
                    "finished_at": datetime.now(UTC) - timedelta(days=age),
                }
            },
        )
    # An interrupted upload: chunks and no file document, one old, one still being written.
    orphan = ObjectId.from_datetime(datetime.now(UTC) - timedelta(hours=7))
    young = ObjectId()
    for files_id in (orphan, young):
        mongo_db["videos.chunks"].insert_one({"files_id": files_id, "n": 0, "data": b"x" * 100})
    # Videos: one of a finished job whose deletion failed, one of no job (its job was never
    # made), one of a job still queued; and a young one of no job (its upload just finished).
    videos = mongo.videos(mongo_db)
    hours_ago = datetime.now(UTC) - timedelta(hours=7)
    queued = seed.job_record(mongo_db, 1, "sweep@example.test")
    jobless, just_uploaded = ObjectId(), ObjectId()
    for oid in (old_job, jobless, queued, just_uploaded):
        videos.upload_from_stream_with_id(oid, "v.mp4", io.BytesIO(b"vid"))
    mongo_db["videos.files"].update_many(
        {"_id": {"$in": [old_job, jobless, queued]}}, {"$set": {"uploadDate": hours_ago}}
    )
    # A worker killed mid-job leaves its folder; its pid no longer exists.
    stale = Path(stack_env["TMPDIR"]) / "mp3-job-999999999-abc"
    stale.mkdir()
    (stale / "video").write_bytes(b"left behind")
    live = Path(stack_env["TMPDIR"]) / "mp3-job-1-live"  # pid 1 exists: a job under way.
    live.mkdir(exist_ok=True)

    # Failed-login counters: an old one goes, a hard lock stays until an operator lifts it.
    old = datetime.now(UTC) - timedelta(days=8)
    throttle = mongo_db["login_throttle"]
    throttle.insert_one(
        {"_id": f"account:gone-{old_job}@example.test", "failures": 3, "last_failure": old}
    )
    throttle.insert_one(
        {
            "_id": f"account:locked-{old_job}@example.test",
            "failures": 100,
            "hard_locked": True,
            "last_failure": old,
        }
    )

    sweep.apply_async()

    # The old counter is the sweep's last clean-up: once it is gone, every step has run.
    wait_until(
        lambda: (
            not stale.exists()
            and throttle.count_documents({"_id": f"account:gone-{old_job}@example.test"}) == 0
        ),
        timeout=30,
        what="the sweep to run",
    )
    assert live.exists()
    assert mongo_db["mp3s.files"].count_documents({"_id": old_job}) == 0
    assert mongo_db["mp3s.chunks"].count_documents({"files_id": old_job}) == 0
    assert jobs.get(mongo_db, old_job)["mp3"] is None
    assert mongo_db["mp3s.files"].count_documents({"_id": new_job}) == 1
    assert mongo_db["videos.chunks"].count_documents({"files_id": orphan}) == 0
    left = {doc["_id"] for doc in mongo_db["videos.files"].find({}, {"_id": 1})}
    assert old_job not in left and jobless not in left
    assert {queued, just_uploaded} <= left
    assert mongo_db["videos.chunks"].count_documents({"files_id": {"$in": [old_job, jobless]}}) == 0
    assert mongo_db["videos.chunks"].count_documents({"files_id": young}) == 1
    assert throttle.count_documents({"_id": f"account:locked-{old_job}@example.test"}) == 1
    live.rmdir()

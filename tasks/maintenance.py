"""Periodic clean-up (Celery beat): expired MP3s, left-over videos and GridFS chunks, stale
temporary files, old login counters."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from celery.utils.log import get_task_logger
from pymongo.database import Database

from core import jobs, mongo
from tasks.context import db, settings
from tasks.convert import sweep_stale_tmp

log = get_task_logger(__name__)

#: An upload still in progress writes chunks before its file document; leave young ones alone.
ORPHAN_GRACE = timedelta(hours=6)


def expire_mp3s(database: Database, retention_days: int) -> int:
    """Delete the MP3s of jobs that finished more than `retention_days` ago; return how many."""
    cutoff = jobs.now() - timedelta(days=retention_days)
    removed = 0
    for job in jobs.collection(database).find(
        {"status": jobs.DONE, "finished_at": {"$lt": cutoff}, "mp3": {"$ne": None}}
    ):
        mongo.delete_file(mongo.mp3s(database), job["_id"])
        jobs.collection(database).update_one(
            {"_id": job["_id"]}, {"$set": {"mp3": None, "expired": True, "updated_at": jobs.now()}}
        )
        removed += 1
    return removed


def remove_orphan_chunks(database: Database, grace: timedelta = ORPHAN_GRACE) -> int:
    """Delete GridFS chunks whose file document never came (interrupted uploads)."""
    removed = 0
    cutoff = jobs.now() - grace
    for bucket in ("videos", "mp3s"):
        chunks, files = database[f"{bucket}.chunks"], database[f"{bucket}.files"]
        for files_id in chunks.distinct("files_id"):
            if files.count_documents({"_id": files_id}, limit=1):
                continue
            # ObjectIds carry their creation time; chunks of an upload under way are young.
            created = getattr(files_id, "generation_time", None)
            if created is not None and created > cutoff:
                continue
            removed += chunks.delete_many({"files_id": files_id}).deleted_count
    return removed


def remove_leftover_videos(database: Database, keep: bool, grace: timedelta = ORPHAN_GRACE) -> int:
    """Delete stored videos no job will read again: of an ended job, or of no job at all.

    `notify` deletes a finished job's video after its email; this catches the ones a failure
    left behind. A video younger than `grace` is left alone (its job may not exist yet).
    With `keep` (KEEP_VIDEOS), only videos without a job go.
    """
    removed = 0
    cutoff = jobs.now() - grace
    bucket = mongo.videos(database)
    for video in database["videos.files"].find({"uploadDate": {"$lt": cutoff}}, {"_id": 1}):
        # A video is stored under its job's id (core.jobs.create), so the lookup is by _id.
        job = jobs.collection(database).find_one({"_id": video["_id"]}, {"status": 1})
        if job is None or (not keep and job["status"] in jobs.TERMINAL):
            mongo.delete_file(bucket, video["_id"])
            removed += 1
    return removed


#: Failed-login counters are forgotten after this long without a failure, except hard locks,
#: which only an operator lifts (`flask --app app users unlock`).
THROTTLE_MEMORY = timedelta(days=7)


def forget_old_login_failures(database: Database, memory: timedelta = THROTTLE_MEMORY) -> int:
    """Delete login-throttle counters idle for `memory`; unknown emails would pile up otherwise."""
    cutoff = jobs.now() - memory
    return (
        database["login_throttle"]
        .delete_many({"last_failure": {"$lt": cutoff}, "hard_locked": {"$ne": True}})
        .deleted_count
    )


@shared_task(name="tasks.maintenance.sweep")
def sweep() -> dict[str, int]:
    """Run every clean-up once and return what each removed."""
    database = db()
    result = {
        "mp3s": expire_mp3s(database, settings().mp3_retention_days),
        "orphan_chunks": remove_orphan_chunks(database),
        "videos": remove_leftover_videos(database, settings().keep_videos),
        "tmp_dirs": sweep_stale_tmp(),
        "login_counters": forget_old_login_failures(database),
    }
    log.info("swept", extra=result)
    return result

"""The `convert` task: GridFS video → temporary file (ffmpeg reading it meanwhile) → MP3 in GridFS.

Delivery is at least once (late acks, requeue when a worker dies), so a run must be harmless to
repeat: the job is claimed under a lease, the MP3 is stored under the job's own id (a rerun
replaces it rather than adding a second), and a job that already ended is left alone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import gridfs
import psutil
from celery import shared_task
from celery.exceptions import Reject
from celery.utils.log import get_task_logger
from kombu.exceptions import OperationalError
from pymongo.errors import PyMongoError

from core import jobs, mongo
from tasks import ffmpeg
from tasks.context import db, settings
from tasks.video_copy import VideoCopy

log = get_task_logger(__name__)

#: A conversion claimed this many times without finishing is taken for a poison video.
MAX_ATTEMPTS = 3
#: How long a claim stays valid without a progress update from the worker holding it.
LEASE_SECONDS = 20
#: Temporary folders of jobs are named so a sweep can tell whose they are.
TMP_PREFIX = "mp3-job-"


class ConversionFailed(Exception):
    """The job failed for good; the reason is on the job, and the error callback emails it."""


def worker_identity() -> str:
    """Return host:pid, which names the process holding a job's lease."""
    return f"{socket.gethostname()}:{os.getpid()}"


def process_gone(pid: int) -> bool:
    """Return whether the process no longer runs; a zombie counts as gone.

    Where PID 1 does not reap orphans, a killed pool process stays a zombie for good.
    """
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _holder_is_dead(holder: str | None) -> bool:
    # A lease held by a process of this host that no longer runs (its worker was killed) can be
    # taken over at once instead of waiting for it to run out.
    if not holder or ":" not in holder:
        return False
    host, _, pid = holder.rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and process_gone(int(pid))


def _claim(database, job_id, me: str) -> tuple[dict | None, dict | None]:
    """Claim the job; return (the claimed job, None), or (None, the job as it stands)."""
    job = jobs.claim(database, job_id, worker=me, lease_seconds=LEASE_SECONDS)
    if job is not None:
        return job, None
    current = jobs.get(database, job_id)
    if current and current["status"] == jobs.CONVERTING and _holder_is_dead(current.get("worker")):
        jobs.release(database, job_id, current.get("worker"))
        job = jobs.claim(database, job_id, worker=me, lease_seconds=LEASE_SECONDS)
    return job, None if job is not None else current


@shared_task(
    bind=True,
    name="tasks.convert.convert",
    acks_late=True,
    max_retries=5,
    autoretry_for=(PyMongoError,),
    retry_backoff=2,
    retry_backoff_max=60,
    retry_jitter=True,
)
def convert(self, job_id: str) -> str:
    """Convert the job's video to MP3; return the job id for the next link of the chain."""
    database = db()
    oid = jobs.parse_id(job_id)
    me = worker_identity()
    job, current = _claim(database, oid, me)
    if job is None:
        if current is None or current["status"] in jobs.TERMINAL:
            # Cancelled, deleted, or finished by an earlier delivery of this same message.
            log.info(
                "nothing to convert",
                extra={"job_id": job_id, "status": current and current["status"]},
            )
            # A video the earlier delivery left behind goes with this chain's `notify`, which
            # runs after this return (or as the error callback of the raise below).
            if current is not None and current["status"] == jobs.FAILED:
                raise ConversionFailed(current.get("error") or "failed")
            return job_id
        # Another live worker holds the lease: look again once it could have run out.
        raise self.retry(countdown=LEASE_SECONDS, max_retries=None)
    if job["attempts"] > MAX_ATTEMPTS:
        reason = (
            f"the conversion stopped its worker {MAX_ATTEMPTS} times; this file cannot be converted"
        )
        jobs.fail(database, oid, reason)
        log.error("poison video", extra={"job_id": job_id, "attempts": job["attempts"]})
        _remove_video(database, job)
        # The failure email is sent here because a rejected message calls no error callback.
        from tasks.notify import notify

        notify.apply_async((job_id,), task_id=f"{job_id}-notify")
        raise Reject(reason, requeue=False)
    try:
        mp3 = _convert(self, database, job, me)
    except ffmpeg.Cancelled:
        log.info("cancelled while converting", extra={"job_id": job_id})
        mongo.delete_file(mongo.mp3s(database), oid)
        return job_id
    except ffmpeg.FfmpegCrashed as exc:
        # Perhaps the machine, perhaps the input: retry, and let MAX_ATTEMPTS bound it.
        jobs.release(database, oid, me)
        raise self.retry(exc=exc, countdown=1, max_retries=MAX_ATTEMPTS) from exc
    except ffmpeg.MediaError as exc:
        jobs.fail(database, oid, str(exc))
        log.warning("conversion failed", extra={"job_id": job_id, "reason": str(exc)})
        _remove_video(database, job)
        raise ConversionFailed(str(exc)) from None
    if jobs.finish(database, oid, worker=me, mp3=mp3) is None:
        # Cancelled (or taken over) while the MP3 was being stored: it must not stay behind.
        mongo.delete_file(mongo.mp3s(database), oid)
        return job_id
    # The video is deleted by `notify`, after the email: deleting 227 MB takes SecantusDB about
    # a second, which neither the user's email nor this worker's next job should wait for.
    log.info("converted", extra={"job_id": job_id, **{k: v for k, v in mp3.items() if k != "id"}})
    return job_id


def _convert(task, database, job: dict, me: str) -> dict:
    """Do the work of one claimed job; return the MP3's description."""
    current = settings()
    oid = job["_id"]
    options = job.get("options") or {}
    sweep_stale_tmp()
    workdir = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-"))
    try:
        src, dst = workdir / "video", workdir / "audio.mp3"
        sent: dict[str, int] = {}

        def progress(percent: int) -> bool:
            # Flower's view of the progress is a nicety: an event the broker does not take
            # must not stop the conversion, and an unchanged value is not sent again.
            if sent.get("percent") != percent:
                with contextlib.suppress(OperationalError, OSError):
                    task.send_event("task-progress", retry=False, progress=percent, job_id=str(oid))
                sent["percent"] = percent
            return (
                jobs.report_progress(database, oid, percent, worker=me, lease_seconds=LEASE_SECONDS)
                is not None
            )

        started = time.monotonic()
        try:
            copy = VideoCopy(database, oid, src)
        except gridfs.errors.NoFile:
            raise ffmpeg.MediaError("the uploaded video is gone; upload it again") from None
        # ffmpeg starts at once, on the file the copy is still writing (tasks/video_copy.py).
        with copy:
            run = ffmpeg.convert(
                src,
                dst,
                bitrate=options.get("bitrate"),
                quality=options.get("quality"),
                on_progress=progress,
                time_limit=current.convert_time_limit,
                growing=copy,
            )
        if not dst.exists() or dst.stat().st_size == 0:
            raise ffmpeg.MediaError("the audio track could not be decoded")
        # The MP3's duration is ffmpeg's own last out_time (-progress): no second probe run.
        duration = run.out_seconds or run.input.duration
        size = dst.stat().st_size
        bucket = mongo.mp3s(database)
        # The MP3 has the job's id: a redelivered run replaces its own file instead of adding one.
        # Only a redelivery can find one (attempts counts claims), so a first run skips the delete.
        if job["attempts"] > 1:
            mongo.delete_file(bucket, oid)
        with open(dst, "rb") as fh:
            mongo.store_with_id(
                bucket,
                oid,
                jobs.mp3_filename(job["filename"]),
                fh,
                metadata={
                    "job": oid,
                    "owner": job["owner"],
                    "duration_seconds": duration,
                    "bitrate": options.get("bitrate"),
                    "quality": options.get("quality"),
                    "copied": run.copied,
                },
            )
        return {
            "id": oid,
            "bytes": size,
            "duration_seconds": duration or 0.0,
            "seconds": round(time.monotonic() - started, 3),
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _remove_video(database, job: dict) -> None:
    if not settings().keep_videos:
        mongo.delete_file(mongo.videos(database), job["video_id"])


def remove_converted_video(database, job_id: object) -> None:
    """Delete the video of a job that has ended as done or failed; nothing else is touched."""
    job = jobs.get(database, job_id)
    if job is not None and job["status"] in (jobs.DONE, jobs.FAILED):
        _remove_video(database, job)


def sweep_stale_tmp(max_age: float = 6 * 3600) -> int:
    """Remove job folders whose worker process is gone, or that are older than `max_age` s."""
    removed = 0
    root = Path(tempfile.gettempdir())
    for path in root.glob(f"{TMP_PREFIX}*"):
        pid = path.name[len(TMP_PREFIX) :].split("-", 1)[0]
        try:
            old = time.time() - path.stat().st_mtime > max_age
        except FileNotFoundError:
            continue
        if old or (pid.isdigit() and process_gone(int(pid))):
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed

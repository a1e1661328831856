"""Job records in MongoDB's `jobs` collection, and every state change a job goes through.

A job's id is an ObjectId, and the uploaded video and the converted MP3 carry the same id in
their GridFS buckets: a redelivered conversion therefore finds (or replaces) its own MP3 instead of
storing a second one. Each change is one atomic update guarded by the state it expects, so two
workers that receive the same message cannot both move a job forward.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.collection import Collection
from pymongo.database import Database

QUEUED, CONVERTING, DONE, FAILED, CANCELLED = "queued", "converting", "done", "failed", "cancelled"
STATUSES = (QUEUED, CONVERTING, DONE, FAILED, CANCELLED)
TERMINAL = frozenset({DONE, FAILED, CANCELLED})


def now() -> datetime:
    """Return the current time in UTC, at MongoDB's millisecond precision."""
    moment = datetime.now(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def parse_id(value: object) -> ObjectId | None:
    """Return the ObjectId `value` names, or None for anything malformed."""
    if isinstance(value, ObjectId):
        return value
    try:
        return ObjectId(str(value))
    except (InvalidId, TypeError):
        return None


def collection(db: Database) -> Collection:
    """Return the jobs collection."""
    return db["jobs"]


def ensure_indexes(db: Database) -> None:
    """Create the indexes the queries below rely on (idempotent)."""
    jobs = collection(db)
    jobs.create_index([("owner", ASCENDING), ("created_at", DESCENDING)])
    jobs.create_index([("status", ASCENDING), ("updated_at", ASCENDING)])


def create(
    db: Database,
    job_id: ObjectId,
    *,
    owner: int,
    owner_email: str,
    filename: str,
    video_bytes: int,
    bitrate: int | None,
    quality: int | None,
) -> dict[str, Any]:
    """Insert a new queued job and return it."""
    moment = now()
    job = {
        "_id": job_id,
        "owner": owner,
        "owner_email": owner_email,
        "filename": filename,
        "status": QUEUED,
        "progress": 0,
        "video_id": job_id,
        "video_bytes": video_bytes,
        "options": {"bitrate": bitrate, "quality": quality},
        "created_at": moment,
        "updated_at": moment,
        "error": None,
        "mp3": None,
        "attempts": 0,
        "lease_until": None,
        "notification": {"state": "pending", "attempts": 0, "error": None},
    }
    collection(db).insert_one(job)
    return job


def get(db: Database, job_id: object, owner: int | None = None) -> dict[str, Any] | None:
    """Return the job, or None when it is unknown, malformed or (given `owner`) someone else's."""
    oid = parse_id(job_id)
    if oid is None:
        return None
    query: dict[str, Any] = {"_id": oid}
    if owner is not None:
        query["owner"] = owner
    return collection(db).find_one(query)


def list_for(db: Database, owner: int, *, limit: int, offset: int) -> tuple[list[dict], int]:
    """Return one page of the owner's jobs, newest first, and their total count."""
    jobs = collection(db)
    cursor = jobs.find({"owner": owner}).sort([("created_at", DESCENDING), ("_id", DESCENDING)])
    page = list(cursor.skip(offset).limit(limit))
    return page, jobs.count_documents({"owner": owner})


def update(
    db: Database, job_id: ObjectId, expect: dict | None = None, **fields: Any
) -> dict | None:
    """Set `fields` on the job if it matches `expect`; return the job after, or None."""
    query = {"_id": job_id, **(expect or {})}
    fields["updated_at"] = now()
    return collection(db).find_one_and_update(
        query, {"$set": fields}, return_document=ReturnDocument.AFTER
    )


def claim(db: Database, job_id: ObjectId, *, worker: str, lease_seconds: float) -> dict | None:
    """Take the job for conversion unless it is finished or another live worker holds it.

    The lease is renewed with every progress update; a worker that died stops renewing it, so the
    redelivered message can take the job over once the lease has run out.
    """
    moment = now()
    return collection(db).find_one_and_update(
        {
            "_id": job_id,
            "status": {"$in": [QUEUED, CONVERTING]},
            "$or": [{"lease_until": None}, {"lease_until": {"$lt": moment}}],
        },
        {
            "$set": {
                "status": CONVERTING,
                "worker": worker,
                "lease_until": moment + timedelta(seconds=lease_seconds),
                "updated_at": moment,
                "started_at": moment,
            },
            "$inc": {"attempts": 1},
        },
        return_document=ReturnDocument.AFTER,
    )


def release(db: Database, job_id: ObjectId, holder: str | None) -> None:
    """Drop the lease `holder` has on a converting job, so that the next delivery can claim it."""
    collection(db).update_one(
        {"_id": job_id, "status": CONVERTING, "worker": holder},
        {"$set": {"lease_until": None, "worker": None}},
    )


def report_progress(
    db: Database, job_id: ObjectId, progress: int, *, worker: str, lease_seconds: float
) -> dict | None:
    """Record progress and renew the lease; return None when the job was cancelled meanwhile."""
    moment = now()
    return collection(db).find_one_and_update(
        {"_id": job_id, "status": CONVERTING, "worker": worker},
        {
            "$set": {
                "progress": progress,
                "lease_until": moment + timedelta(seconds=lease_seconds),
                "updated_at": moment,
            }
        },
        return_document=ReturnDocument.AFTER,
    )


def finish(db: Database, job_id: ObjectId, *, worker: str, mp3: dict) -> dict | None:
    """Mark the job done with its MP3, if this worker still holds it."""
    return update(
        db,
        job_id,
        {"status": CONVERTING, "worker": worker},
        status=DONE,
        progress=100,
        mp3=mp3,
        lease_until=None,
        error=None,
        finished_at=now(),
    )


def fail(db: Database, job_id: ObjectId, reason: str) -> dict | None:
    """Mark the job failed with a reason a person can read, unless it already ended."""
    return update(
        db,
        job_id,
        {"status": {"$in": [QUEUED, CONVERTING]}},
        status=FAILED,
        error=reason,
        lease_until=None,
        finished_at=now(),
    )


def cancel(db: Database, job_id: ObjectId, owner: int) -> dict | None:
    """Mark the owner's unfinished job cancelled; return it, or None when it had already ended."""
    return update(
        db,
        job_id,
        {"owner": owner, "status": {"$in": [QUEUED, CONVERTING]}},
        status=CANCELLED,
        lease_until=None,
        finished_at=now(),
    )


def claim_notification(db: Database, job_id: ObjectId, *, stale_seconds: float) -> dict | None:
    """Take the right to email the outcome of a finished job, once.

    A claim left in `sending` by a worker that died is taken over after `stale_seconds`: the
    email may then go twice, which is better than never (at-least-once, made rare by the window).
    """
    moment = now()
    return collection(db).find_one_and_update(
        {
            "_id": job_id,
            "status": {"$in": [DONE, FAILED]},
            "$or": [
                {"notification.state": {"$in": ["pending", "retrying"]}},
                {
                    "notification.state": "sending",
                    "notification.claimed_at": {"$lt": moment - timedelta(seconds=stale_seconds)},
                },
            ],
        },
        {
            "$set": {"notification.state": "sending", "notification.claimed_at": moment},
            "$inc": {"notification.attempts": 1},
        },
        return_document=ReturnDocument.AFTER,
    )


def set_notification(db: Database, job_id: ObjectId, state: str, error: str | None = None) -> None:
    """Record how the email of a job went: `sent`, `retrying` or `failed` (permanently)."""
    fields: dict[str, Any] = {"notification.state": state, "notification.error": error}
    if state == "sent":
        fields["notification.sent_at"] = now()
    collection(db).update_one({"_id": job_id}, {"$set": fields})


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat().replace("+00:00", "Z")


def to_public(job: dict, public_url: str) -> dict[str, Any]:
    """Return the job as the API shows it (DESIGN.md's job shape)."""
    job_id = str(job["_id"])
    mp3 = job.get("mp3")
    return {
        "id": job_id,
        "status": job["status"],
        "progress": int(job.get("progress") or 0),
        "filename": job["filename"],
        "created_at": _iso(job.get("created_at")),
        "updated_at": _iso(job.get("updated_at")),
        "error": job.get("error"),
        "mp3": None
        if not mp3
        else {
            "id": str(mp3["id"]),
            "url": f"{public_url}/jobs/{job_id}/mp3",
            "bytes": int(mp3["bytes"]),
            "duration_seconds": round(float(mp3["duration_seconds"]), 3),
        },
    }


def mp3_filename(filename: str) -> str:
    """Return the download name of the MP3 made from `filename`."""
    stem = filename.rsplit(".", 1)[0] if "." in filename.strip(".") else filename
    return f"{stem or 'audio'}.mp3"

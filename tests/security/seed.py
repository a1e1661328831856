"""Jobs planted straight into MongoDB with the service's own functions, for the access tests."""

from __future__ import annotations

import io

from bson import ObjectId
from pymongo.database import Database

from core import jobs, mongo

#: Not a real MP3, but a file the download routes stream, range and tag like any other.
MP3_BYTES = b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(range(256)) * 40
VIDEO_BYTES = b"\x00\x00\x00\x18ftypmp42" + bytes(1000)


def job_record(db: Database, owner: int, email: str, filename: str = "clip.mp4") -> ObjectId:
    """Insert a queued job record only (no file); return its id."""
    oid = ObjectId()
    jobs.create(
        db,
        oid,
        owner=owner,
        owner_email=email,
        filename=filename,
        video_bytes=len(VIDEO_BYTES),
        bitrate=None,
        quality=None,
    )
    return oid


def queued_job(db: Database, owner: int, email: str, filename: str = "clip.mp4") -> ObjectId:
    """Store a video and its queued job (published to no queue, so no worker takes it)."""
    oid = job_record(db, owner, email, filename)
    mongo.videos(db).upload_from_stream_with_id(
        oid, filename, io.BytesIO(VIDEO_BYTES), metadata={"owner": owner}
    )
    return oid


def done_job(db: Database, owner: int, email: str, filename: str = "clip.mp4") -> ObjectId:
    """Store a finished job with its MP3, as the worker leaves one."""
    oid = job_record(db, owner, email, filename)
    mongo.mp3s(db).upload_from_stream_with_id(
        oid, jobs.mp3_filename(filename), io.BytesIO(MP3_BYTES), metadata={"owner": owner}
    )
    jobs.collection(db).update_one(
        {"_id": oid},
        {
            "$set": {
                "status": jobs.DONE,
                "progress": 100,
                "mp3": {"id": oid, "bytes": len(MP3_BYTES), "duration_seconds": 1.5},
            }
        },
    )
    return oid


def remove(db: Database, *job_ids: ObjectId) -> None:
    """Delete planted jobs and their files."""
    for oid in job_ids:
        jobs.collection(db).delete_one({"_id": oid})
        mongo.delete_file(mongo.videos(db), oid)
        mongo.delete_file(mongo.mp3s(db), oid)

"""What GridFS holds of uploaded videos, compared as sets of ids.

Counting documents before and after a request races with other jobs' videos being deleted (their
`notify` deletes them after the email, at any moment); a set difference only sees what was added.
"""

from __future__ import annotations

from pymongo.database import Database


def videos(db: Database) -> tuple[set, set]:
    """Return the ids of the video files and of the files that video chunks belong to."""
    files = {doc["_id"] for doc in db["videos.files"].find({}, {"_id": 1})}
    chunks = {doc["files_id"] for doc in db["videos.chunks"].find({}, {"files_id": 1})}
    return files, chunks


def assert_no_new_videos(db: Database, before: tuple[set, set]) -> None:
    """Fail if a video file or chunks of one appeared since `before` (from `videos`)."""
    files, chunks = videos(db)
    assert files - before[0] == set(), "a video file was left behind"
    assert chunks - before[1] == set(), "video chunks were left behind"


def video_gone(db: Database, oid: object) -> bool:
    """Whether the video stored under `oid` is gone whole: GridFS deletes the file document
    first, then its chunks, so both are checked."""
    return (
        db["videos.files"].count_documents({"_id": oid}) == 0
        and db["videos.chunks"].count_documents({"files_id": oid}) == 0
    )

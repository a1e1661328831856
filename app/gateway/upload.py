"""POST /upload: stream one multipart file into GridFS, record the job, publish its chain.

The body is parsed as it arrives (werkzeug's sans-IO multipart decoder) and each piece goes
straight into a GridFS chunk: the upload is never held whole in memory nor written to disk.
"""

from __future__ import annotations

import logging
import re
import unicodedata

from bson import ObjectId
from flask import Blueprint, Response, g, jsonify, request, url_for
from kombu.exceptions import KombuError, OperationalError
from pymongo.database import Database
from pymongo.errors import PyMongoError, ServerSelectionTimeoutError
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from app.auth.guard import jwt_required
from app.errors import ApiError
from app.services import services
from core import jobs, logs, mongo, sniff

log = logging.getLogger(__name__)
bp = Blueprint("upload", __name__)

READ_SIZE = 256 * 1024
#: Form fields other than the file are a few digits; anything longer is not ours.
MAX_FIELD_BYTES = 1024
#: Room for multipart boundaries and part headers on top of the file itself.
FRAMING_BYTES = 64 * 1024


def clean_filename(raw: str | None) -> str:
    """Return a safe display name: no directories, no control characters, at most 200 chars."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(
        c for c in unicodedata.normalize("NFC", name) if unicodedata.category(c)[0] != "C"
    )
    name = name.strip().lstrip(".") or "video"
    return name[:200]


def _options(fields: dict[str, str]) -> tuple[int | None, int | None]:
    bitrate = fields.get("bitrate", "").strip() or None
    quality = fields.get("quality", "").strip() or None
    if bitrate and quality:
        raise ApiError(400, "bad_request", "give either bitrate or quality, not both")
    if bitrate is not None:
        if not re.fullmatch(r"\d{2,3}", bitrate) or not 32 <= int(bitrate) <= 320:
            raise ApiError(
                400, "bad_request", "bitrate must be a whole number from 32 to 320 (kbit/s)"
            )
        return int(bitrate), None
    if quality is not None:
        if not re.fullmatch(r"\d", quality):
            raise ApiError(400, "bad_request", "quality must be a whole number from 0 (best) to 9")
        return None, int(quality)
    return None, None


class _Receiver:
    """Feed the request body to the multipart decoder and the file's bytes to GridFS."""

    def __init__(self, job_id: ObjectId, limit: int) -> None:
        self.job_id, self.limit = job_id, limit
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.size = 0
        self.grid_in = None
        self._head = b""
        self._field: str | None = None
        self._in_file = False

    def run(self, boundary: bytes) -> None:
        # The decoder buffers at most one read plus a boundary: every event is drained at once.
        decoder = MultipartDecoder(boundary, max_form_memory_size=READ_SIZE + FRAMING_BYTES)
        stream = request.stream
        while True:
            try:
                chunk = stream.read(READ_SIZE)
            except Exception as exc:
                # A body the server cannot read (gunicorn raises its own ParseException for a
                # malformed chunk, werkzeug ClientDisconnected for a short one) is the client's
                # doing: answered 400 like any other unreadable upload, never a 500.
                raise OSError(f"the request body is broken ({type(exc).__name__})") from exc
            decoder.receive_data(chunk or None)
            event = decoder.next_event()
            while not isinstance(event, NeedData | Epilogue):
                self._handle(event)
                event = decoder.next_event()
            if isinstance(event, Epilogue) or not chunk:
                break
        if self._in_file and self.grid_in is None:
            self._open(b"")  # A file shorter than HEAD_BYTES.
        if self.filename is None:
            raise ApiError(400, "bad_request", "send one file in a multipart/form-data body")

    def _handle(self, event) -> None:  # type: ignore[no-untyped-def]
        if isinstance(event, File):
            if self.filename is not None:
                raise ApiError(400, "bad_request", "send exactly one file per upload")
            self.filename = clean_filename(event.filename)
            self._in_file, self._field = True, None
        elif isinstance(event, Field):
            if self._in_file and self.grid_in is None:
                self._open(b"")
            self._in_file, self._field = False, event.name
            self.fields[event.name] = ""
        elif isinstance(event, Data):
            if self._in_file:
                self._file_data(event.data, event.more_data)
            elif self._field is not None:
                value = self.fields[self._field] + event.data.decode("utf-8", "replace")
                if len(value) > MAX_FIELD_BYTES:
                    raise ApiError(400, "bad_request", f"the field {self._field!r} is too long")
                self.fields[self._field] = value

    def _file_data(self, data: bytes, more: bool) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise ApiError(
                413, "too_large", f"the file is larger than the limit of {self.limit} bytes"
            )
        if self.grid_in is not None:
            self.grid_in.write(data)
            return
        self._head += data
        if len(self._head) >= sniff.HEAD_BYTES or not more:
            self._open(self._head)

    def _open(self, head: bytes) -> None:
        if not head:
            raise ApiError(400, "bad_request", "the file is empty")
        if sniff.container_of(head) is None:
            raise ApiError(
                415, "unsupported_media_type", "this is not a video or audio file we can convert"
            )
        bucket = mongo.videos(services().mongo)
        self.grid_in = bucket.open_upload_stream_with_id(
            self.job_id, self.filename or "video", metadata={"owner": g.identity.user_id}
        )
        self.grid_in.write(head)
        self._head = b""

    def abort(self) -> None:
        if self.grid_in is not None:
            try:
                self.grid_in.abort()
            except PyMongoError:
                log.warning(
                    "could not remove the chunks of an aborted upload",
                    extra={"job_id": str(self.job_id)},
                )


def _cleanup_would_wait(exc: PyMongoError) -> bool:
    """Return whether removing what the upload stored would wait out the same timeout again.

    When no server was found within the timeout, the removal would wait as long and fail the
    same way, doubling the wait for the 503. What was stored is left to the sweep: chunks
    without a file document, videos without a job.
    """
    return isinstance(exc, ServerSelectionTimeoutError)


def _forget_video(db: Database, job_id: ObjectId, exc: PyMongoError) -> None:
    """Remove the stored video of an upload whose job could not be recorded, if storage allows."""
    if _cleanup_would_wait(exc):
        return
    try:
        mongo.delete_file(mongo.videos(db), job_id)
    except PyMongoError:
        log.warning(
            "could not remove the video of an unrecorded job", extra={"job_id": str(job_id)}
        )


def _storage_unavailable() -> ApiError:
    return ApiError(503, "storage_unavailable", "file storage is unavailable; try again soon")


@bp.post("/upload")
@jwt_required
def upload() -> Response:
    """Accept a video for conversion and answer 202 with where to follow the job."""
    svc = services()
    limit = svc.settings.max_upload_bytes
    if request.content_length is not None and request.content_length > limit + FRAMING_BYTES:
        raise ApiError(413, "too_large", f"the file is larger than the limit of {limit} bytes")
    if request.mimetype != "multipart/form-data" or "boundary" not in request.mimetype_params:
        raise ApiError(
            400, "bad_request", "send the file as multipart/form-data (curl -F 'file=@video.mp4')"
        )
    job_id = ObjectId()
    logs.bind(job_id=job_id)
    receiver = _Receiver(job_id, limit)
    try:
        receiver.run(request.mimetype_params["boundary"].encode("latin-1"))
        bitrate, quality = _options(receiver.fields)
        receiver.grid_in.close()
    except ApiError:
        receiver.abort()
        raise
    except RequestEntityTooLarge:
        # The decoder's own cap: a preamble or part headers that never end.
        receiver.abort()
        raise ApiError(400, "bad_request", "the multipart body is malformed") from None
    except PyMongoError as exc:
        if not _cleanup_would_wait(exc):
            receiver.abort()
        log.error("storage unavailable during upload", extra={"error": str(exc)})
        raise _storage_unavailable() from None
    except (ValueError, OSError) as exc:
        # A malformed body or a client that went away mid-upload.
        receiver.abort()
        raise ApiError(400, "bad_request", f"the upload could not be read: {exc}") from None
    try:
        jobs.create(
            svc.mongo,
            job_id,
            owner=g.identity.user_id,
            owner_email=g.identity.email,
            filename=receiver.filename or "video",
            video_bytes=receiver.size,
            bitrate=bitrate,
            quality=quality,
        )
    except PyMongoError as exc:
        _forget_video(svc.mongo, job_id, exc)
        log.error("storage unavailable while recording the job", extra={"error": str(exc)})
        raise _storage_unavailable() from None
    _publish(job_id)
    # `filename` is a LogRecord attribute of its own, so the upload's name goes under another key.
    log.info("upload accepted", extra={"bytes": receiver.size, "upload_name": receiver.filename})
    status_url = url_for("jobs.get_job", job_id=str(job_id))
    response = jsonify(job_id=str(job_id), status_url=status_url)
    response.status_code = 202
    response.headers["Location"] = status_url
    return response


def _publish(job_id: ObjectId) -> None:
    """Publish the job's chain, or undo the upload and answer 503."""
    from app import metrics
    from tasks.pipeline import enqueue

    try:
        enqueue(str(job_id))
    except (OperationalError, KombuError, OSError) as exc:
        metrics.PUBLISH_FAILURES.inc()
        log.error("queue unavailable; upload undone", extra={"error": str(exc)})
        db = services().mongo
        try:
            jobs.collection(db).delete_one({"_id": job_id})
            mongo.delete_file(mongo.videos(db), job_id)
        except PyMongoError:
            log.exception("could not undo an upload whose job was not queued")
        raise ApiError(
            503, "queue_unavailable", "the conversion queue is unavailable; try again soon"
        ) from None

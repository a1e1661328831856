"""ffmpeg converts the video while it is still being copied out of GridFS, to the same MP3."""

from __future__ import annotations

import hashlib
import signal
import threading
import time
from pathlib import Path

import gridfs
import psutil
import pytest
from pymongo.errors import PyMongoError

from core import mongo
from tasks import ffmpeg
from tasks.video_copy import VideoCopy
from tests.support.media import duration_of, make_video
from tests.support.servers import MongoServer

pytestmark = pytest.mark.integration


def _convert(src: Path, dst: Path, growing=None, on_progress=lambda _p: True) -> ffmpeg.Run:  # type: ignore[no-untyped-def]
    return ffmpeg.convert(
        src,
        dst,
        bitrate=None,
        quality=None,
        on_progress=on_progress,
        time_limit=120,
        every=0.1,
        growing=growing,
    )


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class SlowWriter:
    """A file written a few KB at a time, as a slow copy would, told to ffmpeg as growing."""

    def __init__(self, source: Path, target: Path) -> None:
        self.data, self.target = source.read_bytes(), target
        self.length = len(self.data)
        target.write_bytes(b"")
        self.thread = threading.Thread(target=self._write)

    def _write(self) -> None:
        with open(self.target, "ab", buffering=0) as fh:
            for at in range(0, self.length, 8192):
                fh.write(self.data[at : at + 8192])
                time.sleep(0.01)

    def check(self) -> None:
        pass

    def wait(self) -> None:
        self.thread.join()


def test_ffmpeg_waits_for_bytes_not_yet_written_instead_of_ending_early(tmp_path):
    video = make_video(tmp_path, "mkv-mp3", seconds=6, size="320x240")
    alone = _convert(video, tmp_path / "alone.mp3")
    writer = SlowWriter(video, tmp_path / "growing.mkv")
    still_writing: list[bool] = []

    def progress(_percent: int) -> bool:
        still_writing.append(writer.thread.is_alive())
        return True

    writer.thread.start()
    run = _convert(writer.target, tmp_path / "grown.mp3", writer, progress)
    assert any(still_writing), "ffmpeg ran only after the file was whole"
    assert run.out_seconds == pytest.approx(alone.out_seconds, abs=0.05)
    assert _digest(tmp_path / "grown.mp3") == _digest(tmp_path / "alone.mp3")


@pytest.mark.parametrize("kind", ["mp4", "mov", "mkv-mp3", "webm-vp9-opus"])
def test_a_video_copied_out_of_gridfs_converts_as_the_uploaded_file_does(kind, mongo_db, tmp_path):
    video = make_video(tmp_path, kind, seconds=4)
    with video.open("rb") as fh:
        oid = mongo.videos(mongo_db).upload_from_stream(video.name, fh)
    try:
        alone = _convert(video, tmp_path / "alone.mp3")
        copied = tmp_path / "copied"
        with VideoCopy(mongo_db, oid, copied) as copy:
            run = _convert(copied, tmp_path / "copied.mp3", copy)
        # ffmpeg, phones and cameras put an MP4's index last; it is written first for ffmpeg.
        assert copy.reordered == (kind in ("mp4", "mov"))
        assert copied.stat().st_size == video.stat().st_size
        if not copy.reordered:
            assert copied.read_bytes() == video.read_bytes()
        assert run.copied == alone.copied
        assert _digest(tmp_path / "copied.mp3") == _digest(tmp_path / "alone.mp3")
        assert duration_of(tmp_path / "copied.mp3") == pytest.approx(4, abs=0.1)
    finally:
        mongo.delete_file(mongo.videos(mongo_db), oid)


def _ffmpeg_children() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if "ffmpeg" in p.name()]


@pytest.mark.parametrize("kind", ["mp4", "mkv-mp3"])
def test_a_copy_that_fails_stops_ffmpeg_and_raises_the_storage_error(kind, mongo_db, tmp_path):
    video = make_video(tmp_path, kind, seconds=4, size="320x240")
    bucket = gridfs.GridFSBucket(mongo_db, bucket_name="videos", chunk_size_bytes=16 * 1024)
    with video.open("rb") as fh:
        oid = bucket.upload_from_stream(video.name, fh)
    chunks = mongo_db["videos.chunks"]
    assert chunks.count_documents({"files_id": oid}) > 4
    chunks.delete_one({"files_id": oid, "n": 2})  # lost from the storage mid-file
    try:
        with (
            pytest.raises(gridfs.errors.CorruptGridFile),
            VideoCopy(mongo_db, oid, tmp_path / "copied") as copy,
        ):
            # Not a MediaError: the job is retried, not failed with a wrong reason.
            _convert(tmp_path / "copied", tmp_path / "copied.mp3", copy)
        assert not _ffmpeg_children()
    finally:
        mongo.delete_file(bucket, oid)


def test_a_video_that_is_gone_is_said_so_before_anything_runs(mongo_db, tmp_path):
    from bson import ObjectId

    with pytest.raises(gridfs.errors.NoFile):
        VideoCopy(mongo_db, ObjectId(), tmp_path / "copied")


def test_a_storage_that_stops_answering_fails_the_copy_instead_of_hanging(tmp_path):
    # A server of its own, frozen once the copy is set up: it keeps its connections open and
    # answers nothing, as a stalled or cut-off MongoDB does. The URI's own socketTimeoutMS (1 s)
    # stands in for the service's default of 60 s (the test of mongo.client below).
    server = MongoServer(tmp_path / "mongo").start()
    database = mongo.client(f"{server.uri}&socketTimeoutMS=1000")["mp3"]
    video = make_video(tmp_path, "mkv-mp3", seconds=4, size="320x240")
    bucket = gridfs.GridFSBucket(database, bucket_name="videos", chunk_size_bytes=16 * 1024)
    with video.open("rb") as fh:
        oid = bucket.upload_from_stream(video.name, fh)
    copy = VideoCopy(database, oid, tmp_path / "copied")
    outcome: list[BaseException | None] = []

    def convert() -> None:
        try:
            with copy:
                _convert(tmp_path / "copied", tmp_path / "copied.mp3", copy)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    try:
        server.proc.send_signal(signal.SIGSTOP)
        worker = threading.Thread(target=convert, daemon=True)
        worker.start()
        worker.join(60)
        assert not worker.is_alive(), "the copy waited for the frozen storage"
    finally:
        server.proc.send_signal(signal.SIGCONT)
        mongo.client(f"{server.uri}&socketTimeoutMS=1000").close()
        server.stop()
    # A storage error, which the task retries: not a MediaError, which would fail the job.
    assert isinstance(outcome[0], PyMongoError), outcome
    assert not _ffmpeg_children()


def test_the_service_client_gives_up_on_a_silent_server_unless_its_uri_says_otherwise():
    uri = "mongodb://127.0.0.1:9/mp3?directConnection=true"
    default = mongo.client(uri).options
    assert default.pool_options.socket_timeout == mongo.SOCKET_TIMEOUT_MS / 1000
    assert default.server_selection_timeout == 3
    tuned = mongo.client(f"{uri}&socketTimeoutMS=2500&serverSelectionTimeoutMS=500").options
    assert tuned.pool_options.socket_timeout == 2.5
    assert tuned.server_selection_timeout == 0.5
    assert tuned.pool_options.connect_timeout == 3  # what the URI does not set keeps its default

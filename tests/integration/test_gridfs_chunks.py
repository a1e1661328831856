"""Stored files are read a few chunks per query and MP3s stored one chunk per insert, for real."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import gridfs
import gridfs.synchronous.grid_file as grid_file
import pytest
from bson import ObjectId
from pymongo import MongoClient

from core import mongo
from tests.support.servers import MongoServer

pytestmark = pytest.mark.integration

SMALL = 1024  # a chunk size that makes a file of a few KB span several queries


def _store(db, data: bytes, chunk_size: int = SMALL):  # type: ignore[no-untyped-def]
    bucket = gridfs.GridFSBucket(db, bucket_name="reads", chunk_size_bytes=chunk_size)
    return bucket, bucket.upload_from_stream("f", data)


def _read(db, bucket: gridfs.GridFSBucket, file_id: object) -> bytes:  # type: ignore[no-untyped-def]
    with bucket.open_download_stream(file_id) as grid_out:
        return b"".join(mongo.iter_chunks(db, "reads", grid_out))


@pytest.mark.parametrize(
    "length",
    [
        0,
        1,
        SMALL * mongo.READ_WINDOW,  # exactly one query's worth
        SMALL * mongo.READ_WINDOW + 1,  # one byte into the second query
        SMALL * mongo.READ_WINDOW * 3,
        SMALL * 50 + 17,
    ],
)
def test_a_file_spanning_several_queries_reads_back_byte_for_byte(mongo_db, length):
    data = os.urandom(length)
    bucket, file_id = _store(mongo_db, data)
    assert _read(mongo_db, bucket, file_id) == data


@pytest.mark.parametrize("lost", [0, mongo.READ_WINDOW - 1, mongo.READ_WINDOW, 49, 50])
def test_a_chunk_lost_anywhere_is_an_error_not_a_shorter_file(mongo_db, lost):
    # 51 chunks: `lost` covers the first, both sides of a query's boundary, and the last two.
    bucket, file_id = _store(mongo_db, os.urandom(SMALL * 50 + 17))
    mongo_db["reads.chunks"].delete_one({"files_id": file_id, "n": lost})
    with pytest.raises(gridfs.errors.CorruptGridFile):
        _read(mongo_db, bucket, file_id)


def test_a_chunk_beyond_the_files_length_is_an_error(mongo_db):
    bucket, file_id = _store(mongo_db, os.urandom(SMALL * 20))
    mongo_db["reads.chunks"].insert_one({"files_id": file_id, "n": 20, "data": b"extra"})
    with pytest.raises(gridfs.errors.CorruptGridFile):
        _read(mongo_db, bucket, file_id)


def test_a_file_document_with_no_chunk_size_is_an_error(mongo_db):
    bucket, file_id = _store(mongo_db, os.urandom(SMALL * 3))
    mongo_db["reads.files"].update_one({"_id": file_id}, {"$set": {"chunkSize": 0}})
    with pytest.raises(gridfs.errors.CorruptGridFile):
        _read(mongo_db, bucket, file_id)


def test_reading_a_large_file_does_not_make_the_server_hold_it_whole(tmp_path: Path):
    # A server of its own, so that its peak memory is this read's and no other test's. Asked for
    # every chunk in one query, SecantusDB gathered all of them before answering: its peak grew
    # by about twice the file (raw and decoded).
    server = MongoServer(tmp_path / "mongo").start()
    client = MongoClient(server.uri)
    try:
        db = client["mp3"]
        size = 96 * mongo.CHUNK_SIZE
        bucket = gridfs.GridFSBucket(db, bucket_name="reads", chunk_size_bytes=mongo.CHUNK_SIZE)
        block = os.urandom(mongo.CHUNK_SIZE)
        with bucket.open_upload_stream("big") as upload:
            for _ in range(size // len(block)):
                upload.write(block)
        peak_before = _peak(server.proc.pid)
        with bucket.open_download_stream(upload._id) as grid_out:
            read = sum(len(chunk) for chunk in mongo.iter_chunks(db, "reads", grid_out))
        assert read == size
        grew = max(_peak(server.proc.pid) - peak_before, 0)
        assert grew < size // 4, f"the server's peak RSS grew by {grew >> 20} MB"
    finally:
        client.close()
        server.stop()


def _peak(pid: int) -> int:
    """The process's peak resident memory (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc")


def test_storing_an_mp3_holds_one_chunk_at_a_time_and_keeps_every_byte(mongo_db, tmp_path):
    data = os.urandom(12 * mongo.CHUNK_SIZE + 5)
    path = tmp_path / "audio.mp3"
    path.write_bytes(data)
    bucket, file_id = mongo.mp3s(mongo_db), ObjectId()
    batching = grid_file._UPLOAD_BUFFER_SIZE
    tracemalloc.start()
    try:
        with path.open("rb") as source:
            mongo.store_with_id(bucket, file_id, "audio.mp3", source, metadata={"job": file_id})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # Four chunks per insert (the gateway's batching) held 8 MB here.
    assert peak < 4 * mongo.CHUNK_SIZE, f"storing held {peak >> 20} MB"
    with bucket.open_download_stream(file_id) as stored:
        assert stored.read() == data
        assert stored.metadata == {"job": file_id}
    assert grid_file._UPLOAD_BUFFER_SIZE == batching  # the gateway's uploads batch as before

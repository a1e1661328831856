"""Connect to MongoDB and open the GridFS buckets the service stores files in."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from functools import cache
from typing import Any, BinaryIO
from urllib.parse import parse_qs, urlsplit

import gridfs
import gridfs.synchronous.grid_file as _grid_file
from pymongo import MongoClient
from pymongo.database import Database

#: GridFS chunk size. Larger than the driver's 255 KiB default: a 1 GiB video becomes 1,024
#: documents instead of 4,112, which halves the round-trips of an upload or a download.
CHUNK_SIZE = 1024 * 1024
#: Chunks per round trip when a file is read whole. GridOut's own cursor lets the server fill
#: 16 MB batches, which the reader holds twice (raw and decoded): +30 MB of RSS per copy or
#: download (bench/RESULTS.md). Two chunks keep it at ~2 MB and cost no throughput: four were
#: 8 % faster on a 227 MB video just uploaded and 15 % slower on a 23 MB one (bench/FINDINGS.md).
READ_BATCH = 2
#: Chunks asked for per query when a file is read whole. The batch size bounds what crosses the
#: wire, not what the server gathers: SecantusDB fetches and decodes every chunk a query matches
#: before it answers the first batch. One query over a 229 MB video cost it 1.2 to 1.8 s of CPU
#: and 550 MB of RSS; queries of 8 chunks, under 0.5 s and 150 MB (bench/FINDINGS.md, fifth pass).
READ_WINDOW = 8

# pymongo's GridIn gathers up to 32 MB of chunks before one insert_many, and BSON-encodes the
# batch on top: ~95 MB of peak memory per upload in flight, measured here. Four chunks per batch
# keep the round-trips low and an upload's footprint near 12 MB (tests/e2e/test_files.py).
if hasattr(_grid_file, "_UPLOAD_BUFFER_SIZE"):
    _grid_file._UPLOAD_BUFFER_SIZE = 4 * CHUNK_SIZE
#: What `store_with_id` buffers: one chunk per insert. With four, storing a 600 s video's MP3 was
#: the worker's peak, 15 MB above the conversion's (bench/FINDINGS.md, fifth pass); an MP3 is a
#: few MB, so one chunk per insert costs only a few round trips.
STORE_BUFFER_SIZE = CHUNK_SIZE
_buffer_size_lock = threading.Lock()


#: How long a reply may take before the operation fails, unless MONGODB_URI sets its own
#: socketTimeoutMS. pymongo's default is to wait for ever: a server that stops answering (frozen,
#: or cut off without a reset) left a worker's copy and its progress updates waiting until
#: Celery's time limits stopped the task, which is not retried as a storage error is. The longest
#: operation here, deleting a video's chunks, takes SecantusDB about 2 ms per MB.
SOCKET_TIMEOUT_MS = 60_000


@cache
def client(uri: str) -> MongoClient:
    """Return one pooled client per URI for the whole process."""
    # Fail fast: an unreachable MongoDB must turn into a 503 within seconds, not a hung request.
    defaults = {
        "serverSelectionTimeoutMS": 3000,
        "connectTimeoutMS": 3000,
        "socketTimeoutMS": SOCKET_TIMEOUT_MS,
    }
    # A keyword argument would override the URI's own option, so a default is given only where
    # the URI has none. (Read from the query string: pymongo's parser resolves mongodb+srv hosts.)
    in_uri = {key.lower() for key in parse_qs(urlsplit(uri).query)}
    options = {key: value for key, value in defaults.items() if key.lower() not in in_uri}
    return MongoClient(uri, tz_aware=True, appname="mp3-converter", **options)


def database(uri: str, name: str) -> Database:
    """Return the service's database."""
    return client(uri)[name]


def videos(db: Database) -> gridfs.GridFSBucket:
    """Return the bucket that holds uploaded videos."""
    return gridfs.GridFSBucket(db, bucket_name="videos", chunk_size_bytes=CHUNK_SIZE)


def mp3s(db: Database) -> gridfs.GridFSBucket:
    """Return the bucket that holds converted MP3 files."""
    return gridfs.GridFSBucket(db, bucket_name="mp3s", chunk_size_bytes=CHUNK_SIZE)


def store_with_id(
    bucket: gridfs.GridFSBucket,
    file_id: object,
    filename: str,
    source: BinaryIO,
    *,
    metadata: dict[str, Any],
) -> None:
    """Store `source` under `file_id`, inserting one chunk at a time.

    The buffer is pymongo's module global: while this runs, an upload of another thread in the
    same process batches one chunk too (slower, not wrong). The worker, which stores one MP3 at
    a time, is what calls it.
    """
    with _buffer_size_lock:
        saved = getattr(_grid_file, "_UPLOAD_BUFFER_SIZE", None)
        _grid_file._UPLOAD_BUFFER_SIZE = STORE_BUFFER_SIZE
        try:
            bucket.upload_from_stream_with_id(file_id, filename, source, metadata=metadata)
        finally:
            if saved is not None:
                _grid_file._UPLOAD_BUFFER_SIZE = saved


def delete_file(bucket: gridfs.GridFSBucket, file_id: object) -> None:
    """Delete a GridFS file and its chunks; chunks without a file document go too."""
    try:
        bucket.delete(file_id)
    except gridfs.errors.NoFile:
        # `delete` removes orphaned chunks before it reports the missing file document,
        # which is exactly what an interrupted upload leaves behind.
        pass


def iter_chunks(db: Database, bucket_name: str, grid_out: gridfs.GridOut) -> Iterator[bytes]:
    """Yield an opened GridFS file's chunks in order, READ_BATCH per round trip.

    Reads `<bucket>.chunks`, the collection the GridFS spec names, one query per READ_WINDOW
    chunks, and raises gridfs.errors.CorruptGridFile when a chunk is missing or the sizes do
    not add up.
    """
    if grid_out.chunk_size <= 0:
        raise gridfs.errors.CorruptGridFile(
            f"{grid_out._id} has a chunk size of {grid_out.chunk_size}"
        )
    chunks = db[f"{bucket_name}.chunks"]
    count = -(-grid_out.length // grid_out.chunk_size)
    expected = size = 0
    for start in range(0, max(count, 1), READ_WINDOW):
        numbers: dict[str, int] = {"$gte": start}
        if start + READ_WINDOW < count:
            numbers["$lt"] = start + READ_WINDOW
        # The last query is open-ended, so that a chunk beyond the length is seen, not ignored.
        cursor = chunks.find(
            {"files_id": grid_out._id, "n": numbers},
            {"data": 1, "n": 1},
            sort=[("n", 1)],
            batch_size=READ_BATCH,
        )
        with cursor:
            for doc in cursor:
                if doc["n"] != expected:
                    raise gridfs.errors.CorruptGridFile(
                        f"chunk {expected} of {grid_out._id} missing"
                    )
                data = doc["data"]
                expected, size = expected + 1, size + len(data)
                yield data
    if size != grid_out.length:
        raise gridfs.errors.CorruptGridFile(
            f"{grid_out._id} has {size} bytes in its chunks, {grid_out.length} in its file"
        )

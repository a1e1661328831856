"""Copy the uploaded video out of GridFS into a local file, in a thread, while ffmpeg reads it.

Copied first and converted after, a 600 s video spent 0.5 to 0.7 s of every job in the copy
alone. Here ffmpeg starts at once on the file the copy is still writing, and waits for the bytes
it reaches before the copy does (`tasks.ffmpeg.command`'s `length`): in the stack, 4.33 → 4.13 s
and 5.00 → 4.19 s for that video in two runs (bench/FINDINGS.md, fourth pass). An MP4 whose
index sits at the end is written index-first (`tasks.faststart`): else ffmpeg would wait for it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import gridfs
from pymongo.database import Database

from core import mongo
from tasks import faststart


def chunk_reader(
    database: Database, bucket_name: str, grid_out: gridfs.GridOut
) -> Callable[[int, int], bytearray]:
    """Return read_at(offset, n) over a stored file, fetching single chunks by number.

    Not GridOut.seek + read: after a seek GridOut opens a cursor over every following chunk,
    whose first batch brings up to 16 MB over the wire for a 16-byte box header.
    """
    chunks = database[f"{bucket_name}.chunks"]
    size, length, cache = grid_out.chunk_size, grid_out.length, {}

    def chunk(n: int) -> bytes:
        # One chunk kept: box headers fall into the same chunk, and the moov is read in order.
        if n not in cache:
            cache.clear()
            doc = chunks.find_one({"files_id": grid_out._id, "n": n}, {"data": 1})
            cache[n] = bytes(doc["data"]) if doc else b""
        return cache[n]

    def read_at(offset: int, n: int) -> bytearray:
        out = bytearray()
        while n > 0 and offset < length:
            index, skip = divmod(offset, size)
            piece = chunk(index)[skip : skip + n]
            if not piece:
                break
            out += piece
            offset, n = offset + len(piece), n - len(piece)
        return out

    return read_at


class VideoCopy:
    """A job's video being copied to `path`; `length` is the size the file will have.

    Opening it raises gridfs.errors.NoFile when the video is gone. An error of the copy (the
    storage lost, a chunk missing) is raised again by `check()` and `wait()`, in the task.
    """

    def __init__(
        self, database: Database, file_id: object, path: Path, *, bucket_name: str = "videos"
    ) -> None:
        self.path = path
        self._database, self._bucket_name = database, bucket_name
        bucket = gridfs.GridFSBucket(database, bucket_name=bucket_name)
        self._grid_out = bucket.open_download_stream(file_id)
        self.length: int = self._grid_out.length
        reader = chunk_reader(database, bucket_name, self._grid_out)
        self._layout = faststart.plan(reader, self.length)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        # Created before ffmpeg starts, so that it never finds the file missing.
        self._file = open(path, "wb", buffering=0)  # closed by the thread
        self._thread = threading.Thread(target=self._copy, name="video-copy", daemon=True)

    def _copy(self) -> None:
        try:
            chunks = mongo.iter_chunks(self._database, self._bucket_name, self._grid_out)
            for piece in faststart.reorder(self._layout, chunks):
                if self._stop.is_set():
                    return
                self._file.write(piece)
        except BaseException as exc:  # re-raised in the task by check() and wait()
            self._error = exc
        finally:
            self._file.close()

    def start(self) -> VideoCopy:
        self._thread.start()
        return self

    @property
    def reordered(self) -> bool:
        """Whether the file is written index-first rather than as it was uploaded."""
        return self._layout is not None

    def check(self) -> None:
        """Raise the copy's error, if it has failed."""
        if self._error is not None:
            raise self._error

    def wait(self) -> None:
        """Return once the whole file is written; raise the copy's error if it failed."""
        self._thread.join()
        self.check()

    def close(self) -> None:
        """Stop the copy (if it still runs) and wait for its thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        with contextlib.suppress(OSError):
            self._file.close()

    def __enter__(self) -> VideoCopy:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

"""Stream a GridFS file as an HTTP response: Range (206), ETag, Last-Modified, a download name."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from urllib.parse import quote

from flask import Response, request
from gridfs import GridOut
from pymongo.database import Database
from werkzeug.wsgi import FileWrapper

from core.mongo import CHUNK_SIZE, iter_chunks

#: Chunks read ahead of the client: MongoDB fetches the next while the socket sends the current.
READ_AHEAD = 4


class _ReadAhead:
    """Iterate a GridFS file's chunks, fetched by a thread up to READ_AHEAD chunks ahead.

    Without it a download alternates: wait for MongoDB, then wait for the socket (in
    bench/RESULTS.md 67 % and 26 % of its time). The thread starts with the iteration (a 304
    or a HEAD never iterates), waits while the client does not read, and ends when the response
    is closed (the WSGI server calls close(), also when the client went away).
    """

    _END = object()

    def __init__(self, db: Database, grid_out: GridOut) -> None:
        self._db, self._grid_out = db, grid_out
        self._queue: queue.Queue = queue.Queue(READ_AHEAD)
        self._closed = threading.Event()

    def _put(self, item: object) -> bool:
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def _fill(self, grid_out: GridOut) -> None:
        try:
            for chunk in iter_chunks(self._db, "mp3s", grid_out):
                if not self._put(chunk):
                    return
        except Exception as exc:  # re-raised in the thread that iterates
            self._put(exc)
            return
        self._put(self._END)

    def __iter__(self) -> Iterator[bytes]:
        threading.Thread(
            target=self._fill, args=(self._grid_out,), daemon=True, name="download-read-ahead"
        ).start()
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            if isinstance(item, Exception):
                raise item
            yield item

    def close(self) -> None:
        self._closed.set()


def content_disposition(filename: str) -> str:
    """Return an attachment header that names the file in ASCII and, exactly, in UTF-8."""
    fallback = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename
    )
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def stream(
    db: Database, grid_out: GridOut, *, filename: str, mimetype: str = "audio/mpeg"
) -> Response:
    """Answer with the file, honouring Range, If-Range and If-None-Match."""
    # A whole-file GET reads ahead; a Range request needs the file's seek (werkzeug's wrapper).
    body = FileWrapper(grid_out, CHUNK_SIZE) if request.range else _ReadAhead(db, grid_out)
    response = Response(body, mimetype=mimetype, direct_passthrough=True)
    response.content_length = grid_out.length
    response.last_modified = grid_out.upload_date
    # A rerun of a conversion replaces the MP3 under the same id, so the upload time is part of
    # the tag: a client never combines ranges of two different files.
    response.set_etag(f"{grid_out._id}-{int(grid_out.upload_date.timestamp() * 1000)}")
    response.headers["Content-Disposition"] = content_disposition(filename)
    response.headers["Cache-Control"] = "private, max-age=0, must-revalidate"
    return response.make_conditional(request, accept_ranges=True, complete_length=grid_out.length)

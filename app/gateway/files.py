"""Stream a GridFS file as an HTTP response: Range (206), ETag, Last-Modified, a download name."""

from __future__ import annotations

from urllib.parse import quote

from flask import Response, request
from gridfs import GridOut
from werkzeug.wsgi import FileWrapper

from core.mongo import CHUNK_SIZE


def content_disposition(filename: str) -> str:
    """Return an attachment header that names the file in ASCII and, exactly, in UTF-8."""
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_"
                       for c in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def stream(grid_out: GridOut, *, filename: str, mimetype: str = "audio/mpeg") -> Response:
    """Answer with the file, honouring Range, If-Range and If-None-Match."""
    response = Response(
        FileWrapper(grid_out, CHUNK_SIZE), mimetype=mimetype, direct_passthrough=True
    )
    response.content_length = grid_out.length
    response.last_modified = grid_out.upload_date
    # A rerun of a conversion replaces the MP3 under the same id, so the upload time is part of
    # the tag: a client never combines ranges of two different files.
    response.set_etag(f"{grid_out._id}-{int(grid_out.upload_date.timestamp() * 1000)}")
    response.headers["Content-Disposition"] = content_disposition(filename)
    response.headers["Cache-Control"] = "private, max-age=0, must-revalidate"
    return response.make_conditional(request, accept_ranges=True, complete_length=grid_out.length)

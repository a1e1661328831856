"""The converter's HTTP API as mp3c uses it, with every failure turned into a CliError."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import Message
from pathlib import Path
from typing import Any, BinaryIO

import httpx

#: Exit codes, also listed by `mp3c --help`.
EXIT_SERVER, EXIT_USAGE, EXIT_AUTH, EXIT_UNREACHABLE = 1, 2, 3, 4
EXPIRED = "your login has expired; run mp3c login"


class CliError(Exception):
    """A failure to report in one line, and the exit code that goes with it."""

    def __init__(self, message: str, exit_code: int = EXIT_SERVER) -> None:
        super().__init__(message)
        self.message, self.exit_code = message, exit_code


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"the server answered {response.status_code} {response.reason_phrase}"


class ProgressReader:
    """A file opened for upload that reports each block httpx reads from it."""

    def __init__(self, fh: BinaryIO, on_read: Callable[[int], None]) -> None:
        self.fh, self.on_read, self.sent = fh, on_read, 0

    def read(self, size: int = -1) -> bytes:
        block = self.fh.read(size)
        self.sent += len(block)
        self.on_read(self.sent)
        return block

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        position = self.fh.seek(offset, whence)
        self.sent = position
        return position

    def tell(self) -> int:
        return self.fh.tell()

    def fileno(self) -> int:
        # httpx takes the file's size from fstat, so the body goes with a Content-Length.
        return self.fh.fileno()


class Api:
    """A session with one server, as one user (or nobody, to log in)."""

    def __init__(self, url: str, token: str = "") -> None:
        self.url = url
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(
            base_url=url, headers=headers, timeout=httpx.Timeout(60.0, connect=5.0)
        )

    def close(self) -> None:
        self.http.close()

    def _check(self, response: httpx.Response) -> httpx.Response:
        if response.is_success:
            return response
        message = _message(response)
        if response.status_code == 401:
            if "expired" in message:
                raise CliError(EXPIRED, EXIT_AUTH)
            raise CliError(f"{message}; run mp3c login", EXIT_AUTH)
        raise CliError(message, EXIT_SERVER)

    def _unreachable(self, exc: httpx.TransportError) -> CliError:
        reason = re.sub(r"^\[Errno -?\d+\] ", "", str(exc)) or exc.__class__.__name__
        if isinstance(exc, httpx.TimeoutException):
            reason = "it did not answer in time"
        return CliError(
            f"cannot reach the server at {self.url} ({reason.lower()})", EXIT_UNREACHABLE
        )

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send one request; return the response when it succeeded, else raise CliError."""
        try:
            return self._check(self.http.request(method, path, **kwargs))
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None

    def login(self, email: str, password: str) -> dict:
        """Return the token answer for the credentials."""
        try:
            response = self.http.post(
                "/login", auth=(email, password), headers={"Accept": "application/json"}
            )
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        if response.status_code in (401, 429):
            raise CliError(_message(response), EXIT_AUTH)
        return self._check(response).json()

    def upload(self, path: Path, fields: dict[str, str], on_sent: Callable[[int], None]) -> dict:
        """Stream the file to POST /upload and return the answer (job_id, status_url)."""
        with path.open("rb") as fh:
            files = {"file": (path.name, ProgressReader(fh, on_sent), "application/octet-stream")}
            return self.request("POST", "/upload", files=files, data=fields).json()

    def job(self, job_id: str) -> dict:
        return self.request("GET", f"/jobs/{job_id}").json()

    def jobs(self, page: int = 1, per_page: int = 20) -> dict:
        return self.request("GET", "/jobs", params={"page": page, "per_page": per_page}).json()

    def delete(self, job_id: str) -> None:
        self.request("DELETE", f"/jobs/{job_id}")

    @contextmanager
    def mp3(self, job_id: str) -> Iterator[httpx.Response]:
        """Open the job's MP3 as a streamed response."""
        try:
            with self.http.stream("GET", f"/jobs/{job_id}/mp3") as response:
                if not response.is_success:
                    response.read()
                yield self._check(response)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None


def attachment_name(response: httpx.Response) -> str | None:
    """Return the file name of Content-Disposition (RFC 6266, RFC 5987 names too), or None."""
    header = response.headers.get("Content-Disposition")
    if not header:
        return None
    holder = Message()
    holder["Content-Disposition"] = header
    name = holder.get_filename()
    return Path(name.replace("\\", "/")).name if name else None

"""Answer every error as JSON `{"error": {"code", "message"}}` with the fitting status code."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from pymongo.errors import ConnectionFailure
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

#: Seconds a client is asked to wait when a service the gateway needs is down.
RETRY_AFTER_OUTAGE = 5


class ApiError(Exception):
    """An error a client caused or must be told about; raised in views, answered as JSON."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def error_response(status: int, code: str, message: str, headers: dict | None = None) -> Response:
    """Build the JSON error response."""
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    response.headers.update(headers or {})
    return response


def _code_for(exc: HTTPException) -> str:
    return (exc.name or "error").lower().replace(" ", "_").replace("'", "")


def register(app: Flask) -> None:
    """Install the JSON error handlers on the app."""

    @app.errorhandler(ApiError)
    def api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        # Keep what the exception says beyond its HTML body: Allow (405), Retry-After (429, 503),
        # WWW-Authenticate (401), Content-Range (416).
        headers = {
            name: value
            for name, value in exc.get_headers()
            if name.lower() not in ("content-type", "content-length")
        }
        return error_response(exc.code or 500, _code_for(exc), exc.description or "", headers)

    @app.errorhandler(ConnectionFailure)
    @app.errorhandler(OperationalError)
    def outage(exc: Exception) -> Response:
        # MongoDB or the SQL database is unreachable: not the client's fault, and not a bug
        # either; the client may simply try again shortly.
        log.warning("a service is unavailable: %s", exc)
        return error_response(
            503,
            "service_unavailable",
            "a service the gateway needs is unavailable; try again soon",
            {"Retry-After": str(RETRY_AFTER_OUTAGE)},
        )

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "Something went wrong on our side.")

"""GET /healthz (the process answers) and GET /readyz (SQL, MongoDB and the broker answer)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait

import pymongo
from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy import text

from app.services import Services, services

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)

#: Each dependency gets this long (a healthy one answers in milliseconds); together they answer
#: within 2 s with a second to spare for a busy machine.
CHECK_TIMEOUT = 1.0
#: Probes (and anyone else: /readyz is public) within this many seconds share one round of checks.
CACHE_SECONDS = 1.0


def _sql(svc: Services) -> None:
    # The engine's own connect timeout (app/db.py) bounds a host that does not answer.
    with svc.engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def _mongo(svc: Services) -> None:
    # A client-side timeout covers server selection too, so a MongoDB that is down fails fast.
    with pymongo.timeout(CHECK_TIMEOUT):
        svc.mongo.command("ping")


def _broker(svc: Services) -> None:
    from tasks import app as celery_app

    # The broker of this app's settings, with Celery's transport options (publisher confirms,
    # the filesystem transport's folders); a connection of its own, closed at once.
    with celery_app.connection_for_write(
        svc.settings.broker_url, connect_timeout=CHECK_TIMEOUT
    ) as connection:
        connection.ensure_connection(max_retries=0, timeout=CHECK_TIMEOUT)


CHECKS: dict[str, Callable[[Services], None]] = {"sql": _sql, "mongodb": _mongo, "broker": _broker}


class Readiness:
    """Run the checks of one app, at most one at a time per dependency, and remember the answer.

    A dependency that hangs keeps its check running past the deadline; the next probe waits on
    that same check instead of starting another, so hung checks never pile up threads.
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=len(CHECKS), thread_name_prefix="readyz")
        self._lock = threading.Lock()
        self._running: dict[str, Future] = {}
        self._answer: tuple[float, dict[str, str]] | None = None

    def check(self, svc: Services) -> dict[str, str]:
        """Return each dependency's state: "ok", or why it is not."""
        with self._lock:
            if self._answer is not None and time.monotonic() - self._answer[0] < CACHE_SECONDS:
                return self._answer[1]
            futures = {}
            for name, check in CHECKS.items():
                future = self._running.get(name)
                if future is None or future.done():
                    future = self._running[name] = self._pool.submit(check, svc)
                futures[name] = future
        wait(futures.values(), timeout=CHECK_TIMEOUT)
        results: dict[str, str] = {}
        for name, future in futures.items():
            if not future.done():
                results[name] = f"no answer within {CHECK_TIMEOUT} s"
            elif (exc := future.exception()) is not None:
                # The reason's details (hosts, ports) go to the log, not to a public answer.
                results[name] = f"unavailable: {type(exc).__name__}"
                log.warning("readiness: %s unavailable", name, extra={"error": str(exc)[:500]})
            else:
                results[name] = "ok"
        with self._lock:
            self._answer = (time.monotonic(), results)
        return results


def _readiness() -> Readiness:
    with _create_lock:
        return current_app.extensions.setdefault("mp3.readiness", Readiness())


_create_lock = threading.Lock()


@bp.get("/healthz")
def healthz() -> Response:
    """Answer 200 while the process can serve requests."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> Response:
    """Answer 200 when every dependency answers, else 503 naming those that did not."""
    results = _readiness().check(services())
    failing = [name for name, state in results.items() if state != "ok"]
    if failing:
        response = jsonify(
            status="unavailable",
            checks=results,
            error={"code": "not_ready", "message": f"not ready: {', '.join(failing)} unavailable"},
        )
        response.status_code = 503
        response.headers["Cache-Control"] = "no-store"
        return response
    response = jsonify(status="ok", checks=results)
    response.headers["Cache-Control"] = "no-store"
    return response

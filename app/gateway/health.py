"""GET /healthz (the process answers) and GET /readyz (SQL, MongoDB and the broker answer)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, wait

from flask import Blueprint, Response, jsonify
from sqlalchemy import text

from app.services import Services, services

bp = Blueprint("health", __name__)

#: Each dependency gets this long; together they answer well within 2 s.
CHECK_TIMEOUT = 1.5
_pool = ThreadPoolExecutor(max_workers=6, thread_name_prefix="readyz")


def _sql(svc: Services) -> None:
    with svc.engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def _mongo(svc: Services) -> None:
    svc.mongo.command("ping")


def _broker(svc: Services) -> None:
    from tasks import app as celery_app

    with celery_app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=0, timeout=CHECK_TIMEOUT)


CHECKS = {"sql": _sql, "mongodb": _mongo, "broker": _broker}


@bp.get("/healthz")
def healthz() -> Response:
    """Answer 200 while the process can serve requests."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> Response:
    """Answer 200 when every dependency answers, else 503 naming those that did not."""
    svc = services()
    futures = {name: _pool.submit(check, svc) for name, check in CHECKS.items()}
    wait(futures.values(), timeout=CHECK_TIMEOUT)
    results: dict[str, str] = {}
    for name, future in futures.items():
        if not future.done():
            results[name] = f"no answer within {CHECK_TIMEOUT} s"
        elif future.exception() is not None:
            results[name] = f"unavailable: {type(future.exception()).__name__}"
        else:
            results[name] = "ok"
    failing = [name for name, state in results.items() if state != "ok"]
    if failing:
        response = jsonify(
            status="unavailable", checks=results,
            error={"code": "not_ready", "message": f"not ready: {', '.join(failing)} unavailable"},
        )
        response.status_code = 503
        return response
    return jsonify(status="ok", checks=results)

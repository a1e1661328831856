"""Prometheus metrics of the gateway, served on METRICS_PORT (never through the Ingress).

Under gunicorn each worker process writes its samples to files in PROMETHEUS_MULTIPROC_DIR
(prometheus_client's multiprocess mode) and the master process serves their sum, with the jobs
counted by status at scrape time (app/gunicorn_conf.py). Without gunicorn (the Flask test client)
the same metrics count in this process's default registry.

The request hooks here also write the request's log line and reset the log context, because a
pooled gunicorn thread would otherwise carry one request's job_id into the next request's lines.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator

from bson import ObjectId
from flask import Flask, Response, g, request
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pymongo.database import Database
from pymongo.errors import PyMongoError

from core import jobs, logs

log = logging.getLogger("app.request")

#: Uploads take minutes on a slow link, so the buckets go well past the usual 10 s.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 600)
SIZE_BUCKETS = tuple(float(2**n) for n in range(16, 32, 2))  # 64 KiB .. 2 GiB
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: Probes answer every few seconds; their lines are logged at DEBUG only.
QUIET_ROUTES = frozenset({"/healthz", "/readyz"})
UPLOAD_ENDPOINT = "upload.upload"

REQUESTS = Counter(
    "mp3_http_requests_total",
    "HTTP requests answered by the gateway, by route and status.",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "mp3_http_request_duration_seconds",
    "Seconds from a request's arrival until its response starts (downloads stream after).",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
UPLOAD_BYTES = Counter(
    "mp3_upload_bytes_total",
    "Bytes of request bodies read by POST /upload, by status.",
    ["status"],
)
UPLOAD_SIZE = Histogram(
    "mp3_upload_size_bytes",
    "Size of the request bodies of accepted uploads (202).",
    buckets=SIZE_BUCKETS,
)
PUBLISH_FAILURES = Counter(
    "mp3_queue_publish_failures_total",
    "Uploads undone and answered 503 because the broker did not take the job's tasks.",
)


class _CountingStream:
    """Wrap the WSGI input and count the bytes the upload view reads from it."""

    def __init__(self, stream) -> None:  # type: ignore[no-untyped-def]
        self._stream, self.count = stream, 0

    def read(self, *args) -> bytes:  # type: ignore[no-untyped-def]
        data = self._stream.read(*args)
        self.count += len(data)
        return data

    def readline(self, *args) -> bytes:  # type: ignore[no-untyped-def]
        data = self._stream.readline(*args)
        self.count += len(data)
        return data

    def readinto(self, buffer) -> int | None:  # type: ignore[no-untyped-def]
        size = self._stream.readinto(buffer)
        self.count += size or 0
        return size

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._stream, name)


def _route() -> str:
    rule = request.url_rule
    return rule.rule if rule is not None else "<unmatched>"


def _job_in_request() -> str | None:
    # /jobs/<job_id>... and /download?fid=<mp3 id>, which is the job's id too.
    candidate = (request.view_args or {}).get("job_id") or request.args.get("fid")
    return str(candidate) if candidate and ObjectId.is_valid(str(candidate)) else None


def _before() -> None:
    logs.clear()
    request_id = request.headers.get("X-Request-ID", "")[:64] or uuid.uuid4().hex
    logs.bind(request_id=request_id, job_id=_job_in_request())
    g.metrics_started = time.perf_counter()
    if request.endpoint == UPLOAD_ENDPOINT:
        g.metrics_upload = _CountingStream(request.environ["wsgi.input"])
        request.environ["wsgi.input"] = g.metrics_upload


def _after(response: Response) -> Response:
    started = g.pop("metrics_started", None)
    seconds = time.perf_counter() - started if started is not None else 0.0
    method = request.method if request.method in METHODS else "OTHER"
    route, status = _route(), str(response.status_code)
    REQUESTS.labels(method, route, status).inc()
    LATENCY.labels(method, route).observe(seconds)
    upload = g.pop("metrics_upload", None)
    extra: dict[str, object] = {}
    if upload is not None:
        UPLOAD_BYTES.labels(status).inc(upload.count)
        if response.status_code == 202:
            UPLOAD_SIZE.observe(upload.count)
        extra["body_bytes"] = upload.count
    log.log(
        logging.DEBUG if route in QUIET_ROUTES else logging.INFO,
        "request",
        extra={
            "method": request.method,
            "path": request.path,
            "route": route,
            "status": response.status_code,
            "duration_ms": round(seconds * 1000, 1),
            "remote_addr": request.remote_addr,
            **extra,
        },
    )
    return response


def _forget(_exc: BaseException | None) -> None:
    # Lines the same thread logs after the request (or between requests) are not about it.
    logs.clear()


def register(app: Flask) -> None:
    """Count requests, latency and uploads of the app, and log one line per request."""
    # First before any other hook (so the body is counted and the time includes them all), and
    # last after them (after_request hooks run in reverse), so the status is the final one.
    app.before_request_funcs.setdefault(None, []).insert(0, _before)
    app.after_request_funcs.setdefault(None, []).insert(0, _after)
    app.teardown_request(_forget)


# --- What a scrape serves ---------------------------------------------------------------------


class JobsCollector(Collector):
    """`mp3_jobs{status}`: the jobs collection counted by status when Prometheus scrapes."""

    #: Several scrapers within this many seconds share one count.
    TTL = 5.0
    #: The count must not make a scrape hang while MongoDB is slow.
    MAX_TIME_MS = 2000

    def __init__(self, database: Callable[[], Database]) -> None:
        self._database = database
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, int]] | None = None

    def _counts(self) -> dict[str, int]:
        with self._lock:
            if self._cached is not None and time.monotonic() - self._cached[0] < self.TTL:
                return self._cached[1]
            collection = jobs.collection(self._database())
            # One count per status, each answered from the (status, updated_at) index.
            counts = {
                status: collection.count_documents({"status": status}, maxTimeMS=self.MAX_TIME_MS)
                for status in jobs.STATUSES
            }
            self._cached = (time.monotonic(), counts)
            return counts

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("mp3_jobs", "Jobs by status.", labels=["status"])
        yield GaugeMetricFamily("mp3_jobs_count_up", "1 when the jobs could be counted.")

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("mp3_jobs_count_up", "1 when the jobs could be counted.")
        try:
            counts = self._counts()
        except (PyMongoError, ValueError) as exc:
            # ValueError: the settings naming MongoDB could not be read (SettingsError).
            log.warning("could not count the jobs for /metrics", extra={"error": str(exc)})
            up.add_metric([], 0)
            yield up
            return
        family = GaugeMetricFamily("mp3_jobs", "Jobs by status.", labels=["status"])
        for status, count in counts.items():
            family.add_metric([status], count)
        up.add_metric([], 1)
        yield family
        yield up


class _Forward(Collector):
    """Forward another registry's metrics (this process's own, without gunicorn)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self):  # type: ignore[no-untyped-def]
        return self._registry.collect()


def scrape_registry(
    database: Callable[[], Database] | None = None, *, multiprocess_dir: str | None = None
) -> CollectorRegistry:
    """Return the registry a scrape reads: the request metrics, and the jobs when `database`."""
    registry = CollectorRegistry()
    if multiprocess_dir:
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry, path=multiprocess_dir)
    else:
        registry.register(_Forward(REGISTRY))
    if database is not None:
        registry.register(JobsCollector(database))
    return registry

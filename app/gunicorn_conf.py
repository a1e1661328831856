"""gunicorn settings of the gateway: `GUNICORN_CMD_ARGS="--config python:app.gunicorn_conf"`.

Threads, not processes, carry the concurrency: requests mostly wait on the network (uploads,
downloads, MongoDB), and one process keeps one pool of connections.

Metrics: every worker process counts into files in PROMETHEUS_MULTIPROC_DIR (a fresh temporary
folder unless it is set), and the master serves their sum on METRICS_PORT (9100; 0 turns it
off), a port the Ingress never routes to. Logs: one JSON object per line, gunicorn's own
lines included; gunicorn's access log is off because the app logs each request itself, with
its route and job (app/metrics.py).
"""

import logging
import os
import shutil
import tempfile
from pathlib import Path

# prometheus_client chooses where samples live when it is first imported, which happens in the
# workers after this module ran in the master: the folder must be in the environment by then.
_OWN_METRICS_DIR = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _OWN_METRICS_DIR:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="mp3-gateway-metrics-")
METRICS_DIR = os.environ["PROMETHEUS_MULTIPROC_DIR"]

worker_class = "gthread"
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
# A 2 GB upload on a slow link takes minutes; a thread busy with it is not a hung worker.
timeout = 600
graceful_timeout = 30
keepalive = 5
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

accesslog = None
errorlog = "-"
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "core.logs.formatter"}},
    "filters": {"context": {"()": "core.logs.ContextFilter"}},
    "handlers": {
        "json": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["context"],
            "stream": "ext://sys.stderr",
        },
        "discard": {"class": "logging.NullHandler"},
    },
    "root": {"level": os.environ.get("LOG_LEVEL", "INFO").upper(), "handlers": ["json"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["json"], "propagate": False},
        "gunicorn.access": {"level": "WARNING", "handlers": ["discard"], "propagate": False},
    },
}
# Python's warnings become JSON lines too, in the master and the workers forked from it.
logging.captureWarnings(True)


def on_starting(server) -> None:  # type: ignore[no-untyped-def]
    """Forget the samples of an earlier run that used the same metrics folder."""
    for stale in Path(METRICS_DIR).glob("*.db"):
        stale.unlink(missing_ok=True)


def when_ready(server) -> None:  # type: ignore[no-untyped-def]
    """Serve /metrics from the master: the sum of the workers' files and the jobs by status."""
    port = int(os.environ.get("METRICS_PORT", "9100") or 0)
    if not port:
        return
    from prometheus_client import start_http_server

    from app import metrics

    registry = metrics.scrape_registry(_jobs_database(), multiprocess_dir=METRICS_DIR)
    address = os.environ.get("METRICS_ADDRESS", "0.0.0.0")  # noqa: S104 - the pod's own port
    try:
        start_http_server(port, addr=address, registry=registry)
    except OSError as exc:
        # The gateway itself still works; say why the metrics are missing.
        server.log.error("metrics: cannot listen on %s:%s: %s", address, port, exc)
        return
    server.log.info("metrics: serving /metrics on %s:%s", address, port)


def _jobs_database():  # type: ignore[no-untyped-def]
    """Return a callable giving the master's own MongoDB database, connected on first scrape."""
    state: dict = {}

    def database():  # type: ignore[no-untyped-def]
        if "db" not in state:
            # A client of the master's own, never core.mongo's cached one: the workers forked
            # from the master must not inherit a client that is in use.
            from pymongo import MongoClient

            from core.settings import load_settings

            settings = load_settings()
            client = MongoClient(
                settings.mongodb_uri,
                serverSelectionTimeoutMS=2000,
                connectTimeoutMS=2000,
                appname="mp3-gateway-metrics",
            )
            state["db"] = client[settings.mongodb_database]
        return state["db"]

    return database


def child_exit(server, worker) -> None:  # type: ignore[no-untyped-def]
    """Drop the live gauges of a worker process that has exited."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, METRICS_DIR)


def on_exit(server) -> None:  # type: ignore[no-untyped-def]
    if _OWN_METRICS_DIR:
        shutil.rmtree(METRICS_DIR, ignore_errors=True)


# gunicorn 27's control socket defaults to one path per user (~/.gunicorn/gunicorn.ctl), which
# every gateway on the machine would fight over; the service does not use it.
control_socket_disable = True

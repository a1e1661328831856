"""Worker start-up: JSON logs, dead-letter queues, and the heartbeat file the liveness probe reads."""

from __future__ import annotations

import os
import threading

from pathlib import Path

from celery import bootsteps
from celery.signals import after_setup_logger, task_postrun, task_prerun, worker_ready

from core import logs

HEARTBEAT_EVERY = 10


def heartbeat_file() -> Path:
    """Return the file the worker touches while it is alive and consuming."""
    return Path(os.environ.get("WORKER_HEARTBEAT_FILE", "/tmp/celery-worker-heartbeat"))  # noqa: S108


@after_setup_logger.connect
def _json_logs(logger, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
    logs.configure(logger)


@task_prerun.connect
def _bind_task(task_id, task, args, kwargs, **_):  # type: ignore[no-untyped-def]
    job_id = args[0] if args else kwargs.get("job_id")
    logs.bind(task_id=task_id, job_id=job_id, task=task.name)


@task_postrun.connect
def _unbind_task(**_) -> None:  # type: ignore[no-untyped-def]
    logs.bind(task_id=None, job_id=None, task=None)


@worker_ready.connect
def _declare_dead_letter_queues(sender, **_) -> None:  # type: ignore[no-untyped-def]
    app = sender.app
    if app.conf.broker_url.startswith("filesystem://"):
        return
    with app.connection_for_write() as conn:
        for queue in getattr(app.conf, "dead_letter_queues", ()) or ():
            queue.bind(conn.default_channel).declare()


class Heartbeat(bootsteps.StartStopStep):
    """Touch the heartbeat file while the consumer runs; a hung worker stops touching it."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.stopped = threading.Event()
        self.consumer = parent

    def start(self, parent) -> None:  # type: ignore[no-untyped-def]
        thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)
        thread.start()

    def stop(self, parent) -> None:  # type: ignore[no-untyped-def]
        self.stopped.set()

    def _beat(self) -> None:
        path = heartbeat_file()
        while not self.stopped.is_set():
            # The beat only counts while the consumer's connection is up.
            connection = getattr(self.consumer, "connection", None)
            if connection is not None and connection.connected:
                path.touch()
            self.stopped.wait(HEARTBEAT_EVERY)


def install(app) -> None:  # type: ignore[no-untyped-def]
    """Add the worker's own boot steps to the app."""
    app.steps["consumer"].add(Heartbeat)




"""Worker start-up: JSON logs, dead-letter queues, and the heartbeat the liveness probe reads."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from celery import bootsteps
from celery.signals import (
    celeryd_after_setup,
    celeryd_init,
    setup_logging,
    task_postrun,
    task_prerun,
    worker_ready,
)

from core import jobs, logs

#: Seconds between two touches of the heartbeat file; `python -m tasks.health` allows 60.
HEARTBEAT_EVERY = 10


def heartbeat_file() -> Path:
    """Return the file the worker touches while it is alive and consuming."""
    return Path(os.environ.get("WORKER_HEARTBEAT_FILE", "/tmp/celery-worker-heartbeat"))  # noqa: S108


@celeryd_init.connect
def _json_logs_early(options=None, **_) -> None:  # type: ignore[no-untyped-def]
    # The worker warns (about running as root, for one) before it sets its logging up.
    logs.configure(level=(options or {}).get("loglevel") or None)
    logs.capture_warnings()


@setup_logging.connect
def _json_logs(loglevel=None, **_) -> None:  # type: ignore[no-untyped-def]
    # Answering this signal replaces Celery's logging set-up as a whole: the root logger gets the
    # JSON handler and Celery adds no text handler of its own, not even to the `celery.task`
    # logger that get_task_logger() hangs task loggers under, so task lines are JSON too.
    # Prefork children inherit the handler when forked, and come back here when spawned.
    logs.configure(level=loglevel or None)
    logs.capture_warnings()


@celeryd_after_setup.connect
def _log_instead_of_banner(sender, instance, **_) -> None:  # type: ignore[no-untyped-def]
    # Celery prints a multi-line text banner to stdout next; the same facts go into one JSON
    # line instead, so that every line a worker writes is a JSON object.
    instance.quiet = True
    app = instance.app
    with app.connection_for_write() as connection:
        broker = connection.as_uri()
    logging.getLogger("tasks.worker").info(
        "worker starting",
        extra={
            "hostname": sender,
            "broker": broker,
            "concurrency": instance.concurrency,
            "queues": sorted(app.amqp.queues.consume_from or app.amqp.queues),
        },
    )


@task_prerun.connect
def _bind_task(task_id, task, args, kwargs, **_):  # type: ignore[no-untyped-def]
    job_id = (kwargs or {}).get("job_id") or logs.job_id_of_task(task_id)
    if job_id is None and args and jobs.parse_id(args[0]) is not None:
        job_id = args[0]
    logs.clear()
    logs.bind(task_id=task_id, job_id=job_id, task=task.name)


@task_postrun.connect
def _unbind_task(**_) -> None:  # type: ignore[no-untyped-def]
    logs.clear()


@worker_ready.connect
def _declare_dead_letter_queues(sender, **_) -> None:  # type: ignore[no-untyped-def]
    app = sender.app
    if app.conf.broker_url.startswith("filesystem://"):
        return
    with app.connection_for_write() as conn:
        for queue in getattr(app.conf, "dead_letter_queues", ()) or ():
            queue.bind(conn.default_channel).declare()


class Heartbeat(bootsteps.StartStopStep):
    """Touch the heartbeat file from the consumer's event loop while it is connected.

    The touch runs on the consumer's own timer, not in a thread of its own: a worker whose event
    loop hangs stops touching the file, and the liveness probe notices within a minute.
    """

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.tref = None

    def start(self, parent) -> None:  # type: ignore[no-untyped-def]
        self.beat(parent)
        self.tref = parent.timer.call_repeatedly(HEARTBEAT_EVERY, self.beat, (parent,), priority=10)

    def stop(self, parent) -> None:  # type: ignore[no-untyped-def]
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None

    shutdown = stop

    @staticmethod
    def beat(consumer) -> None:  # type: ignore[no-untyped-def]
        """Touch the file, if the consumer's connection to the broker is up."""
        connection = getattr(consumer, "connection", None)
        if connection is not None and connection.connected:
            heartbeat_file().touch()


def install(app) -> None:  # type: ignore[no-untyped-def]
    """Add the worker's own boot steps to the app, and adapt Flower when this process runs it."""
    from tasks import flower

    app.steps["consumer"].add(Heartbeat)
    flower.install()

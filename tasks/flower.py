"""What `celery -A tasks flower` adds to Flower 2.2: the prefix redirect, progress, JSON logs.

Flower is configured by its own FLOWER_* variables (FLOWER_URL_PREFIX, FLOWER_BASIC_AUTH,
FLOWER_BROKER_API, FLOWER_MAX_TASKS, FLOWER_MAX_WORKERS, ...). Three things it cannot be told:

- `/flower` (the prefix without its slash) answers 404; behind the Ingress it must redirect to
  `/flower/`, so a route for it goes into Flower's handler list before Flower builds its app.
- The conversion reports progress with custom `task-progress` events. Celery's event state would
  turn each into a custom state "PROGRESS" and keep the percentage where neither the API nor the
  task page shows it; here the task stays STARTED and `progress` becomes one of its fields.
- Its log lines are JSON like every other process of the service (core/logs.py).

`install()` runs when `tasks` is imported (tasks.signals.install calls it), and does nothing
unless the click command this process runs is `flower`: the gateway and the workers never load
Flower's web app for it. Flower's own /flower/metrics and /flower/healthcheck answer without
credentials: they are for Prometheus and the probes inside the cluster, never for the Ingress.
"""

from __future__ import annotations

import os

import click
from celery import states
from celery.events.state import Task
from celery.signals import import_modules

from core import logs

#: The tasks page's columns, with the progress; FLOWER_TASKS_COLUMNS still overrides it.
TASKS_COLUMNS = "name,uuid,state,progress,received,started,runtime,worker"


class ProgressTask(Task):
    """A task as Flower keeps it, with the progress (0-100) of its `task-progress` events."""

    progress = None
    _fields = (*Task._fields, "progress")

    def event(self, type_, timestamp=None, local_received=None, fields=None, **kwargs):  # type: ignore[no-untyped-def]
        if type_ == "progress":
            # A late progress event never moves a finished task back, and never becomes a state.
            if self.state not in states.READY_STATES:
                self.progress = (fields or {}).get("progress")
            return
        super().event(type_, timestamp, local_received, fields, **kwargs)
        if type_ == "succeeded" and self.progress is not None:
            self.progress = 100


def _redirect_handler():  # type: ignore[no-untyped-def]
    from tornado.web import RequestHandler

    class AddSlash(RequestHandler):
        """Redirect the prefix without its slash (`/flower`) to Flower's front page."""

        def get(self) -> None:
            query = f"?{self.request.query}" if self.request.query else ""
            self.redirect(f"{self.request.path}/{query}", permanent=True)

        head = get

    return AddSlash


def _require_auth(**_) -> None:  # type: ignore[no-untyped-def]
    # Flower without FLOWER_BASIC_AUTH or FLOWER_AUTH (OAuth) lets anyone revoke tasks and shut
    # workers down: in production it must not start like that.
    from tornado.options import options

    if os.environ.get("APP_ENV") == "production" and not (options.basic_auth or options.auth):
        raise SystemExit(
            "configuration error: FLOWER_BASIC_AUTH (or FLOWER_AUTH for OAuth) "
            "is required when APP_ENV=production"
        )


def install() -> None:
    """Adapt Flower, if this process is `celery -A tasks flower`."""
    context = click.get_current_context(silent=True)
    if context is None or context.invoked_subcommand != "flower":
        return
    from flower import events, urls
    from flower.views import tasks as task_views
    from tornado.options import options

    logs.configure()
    logs.capture_warnings()
    # The pattern "" becomes "<prefix>" exactly once Flower prefixes its routes; without a
    # prefix it matches no request at all (every path starts with "/").
    urls.handlers.insert(0, ("", _redirect_handler()))
    events.EventsState.Task = ProgressTask
    task_views.TASK_COLUMNS.setdefault("progress", "Progress")
    # A default, set before Flower reads its variables, its config file and its command line.
    options.tasks_columns = TASKS_COLUMNS
    # Flower's constructor imports the app's modules, once every option has been read.
    import_modules.connect(_require_auth, weak=False)

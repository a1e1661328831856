"""The Celery app of the workers: `celery -A tasks worker -Q convert,notify`.

It never imports Flask; what it shares with the gateway lives in `core`.
"""

from celery import Celery

app = Celery("tasks")
app.config_from_object("celeryconfig")

# Importing the modules registers their tasks and signal handlers with the app.
from tasks import convert, maintenance, notify, signals  # noqa: E402, F401

signals.install(app)

__all__ = ["app"]

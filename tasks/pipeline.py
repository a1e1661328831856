"""Publish a job's work: the chain convert → notify, with notify as the error callback too."""

from __future__ import annotations

from celery import chain

from tasks.convert import convert
from tasks.notify import notify


def enqueue(job_id: str) -> None:
    """Publish the job's chain; raise kombu's OperationalError when the broker will not take it.

    The task ids derive from the job id, so Flower and the logs can be searched by job.
    """
    on_error = notify.si(job_id).set(task_id=f"{job_id}-notify")
    work = chain(
        convert.si(job_id).set(task_id=f"{job_id}-convert", link_error=[on_error]),
        notify.si(job_id).set(task_id=f"{job_id}-notify"),
    )
    work.apply_async()

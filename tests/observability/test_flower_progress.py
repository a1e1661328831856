"""How Flower's event state keeps a conversion's `task-progress` events (tasks/flower.py)."""

from __future__ import annotations

import time

from celery.events.state import State

from tasks.flower import ProgressTask


class FlowerState(State):
    Task = ProgressTask


def event(kind: str, **fields: object) -> dict:
    now = time.time()
    return {
        "type": f"task-{kind}",
        "uuid": "job-convert",
        "hostname": "worker@host",
        "timestamp": now,
        "local_received": now,
        "clock": 1,
        **fields,
    }


def test_progress_is_a_field_of_a_started_task_not_a_state_of_its_own():
    state = FlowerState()
    state.event(event("received", name="tasks.convert.convert", args="('job',)"))
    state.event(event("started"))
    state.event(event("progress", progress=40, job_id="job"))
    task = state.tasks["job-convert"]
    assert task.state == "STARTED" and task.progress == 40
    assert task.as_dict()["progress"] == 40
    state.event(event("progress", progress=85))
    assert task.progress == 85


def test_success_completes_the_progress_and_late_events_change_nothing():
    state = FlowerState()
    state.event(event("started"))
    state.event(event("progress", progress=60))
    state.event(event("succeeded", result="'job'", runtime=1.5))
    task = state.tasks["job-convert"]
    assert task.state == "SUCCESS" and task.progress == 100
    state.event(event("progress", progress=70))
    assert task.state == "SUCCESS" and task.progress == 100


def test_a_task_without_progress_events_shows_none():
    state = FlowerState()
    state.event(event("started"))
    state.event(event("succeeded"))
    assert state.tasks["job-convert"].as_dict()["progress"] is None

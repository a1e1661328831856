"""A stack of its own for the fault tests: its own vhost, MongoDB-wire server and workers."""

from __future__ import annotations

import signal
import subprocess
import time
import uuid

import psutil
import pytest

from tests.support import servers
from tests.support.stack import Stack


@pytest.fixture(scope="module")
def chaos(stack_env, run_dir):
    name = f"chaos-{uuid.uuid4().hex[:6]}"
    mongo = servers.MongoServer(run_dir / f"{name}-mongo").start()
    with servers.rabbitmq_vhost() as broker:
        stack = Stack(
            name,
            stack_env,
            run_dir,
            CELERY_BROKER_URL=broker,
            MONGODB_URI=mongo.uri,
            CONVERT_TIME_LIMIT="10",
        )
        stack.mongo_server = mongo
        stack.vhost = broker.rsplit("/", 1)[1]
        stack.start_gateway()
        stack.start_worker(concurrency=1)
        yield stack
        stack.stop()
    mongo.stop()


def queue_counts(vhost: str) -> dict[str, tuple[int, int]]:
    """Return {queue: (ready, unacknowledged)} as RabbitMQ counts them."""
    out = subprocess.run(
        [
            "rabbitmqctl",
            "list_queues",
            "-q",
            "-p",
            vhost,
            "name",
            "messages_ready",
            "messages_unacknowledged",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    counts = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].isdigit():
            counts[parts[0]] = (int(parts[1]), int(parts[2]))
    return counts


def pool_children(worker) -> list[psutil.Process]:
    """Return the worker's pool processes (the ones that run tasks)."""
    return psutil.Process(worker.proc.pid).children()


def ffmpeg_processes(stack) -> list[psutil.Process]:
    """Return the ffmpeg processes converting a job of this stack."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            cmd = proc.info["cmdline"] or []
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if any(str(stack.dir / "tmp") in part for part in cmd) and "-progress" in cmd:
            found.append(proc)
    return found


def sigkill(proc: psutil.Process) -> None:
    try:
        proc.send_signal(signal.SIGKILL)
    except psutil.NoSuchProcess:
        pass


def settle(seconds: float = 1.0) -> None:
    time.sleep(seconds)

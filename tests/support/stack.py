"""A whole stack of the service in processes of its own: gateway, workers, and their own queues.

Tests that kill workers or use a misbehaving ffmpeg must not disturb the run's shared worker, so
they get a stack with its own RabbitMQ vhost and MongoDB database, talking HTTP to its gateway.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import httpx
from pymongo import MongoClient

from tests.support import servers
from tests.support.servers import ServiceProcess, wait_until

FAKE_FFMPEG = Path(__file__).with_name("fake_ffmpeg.py")


class Stack:
    """A gateway and named workers sharing one environment."""

    def __init__(self, name: str, base_env: dict[str, str], run_dir: Path, **overrides: str):
        self.name = name
        self.dir = run_dir / name
        (self.dir / "tmp").mkdir(parents=True, exist_ok=True)
        # The wrapper must run on this virtual environment's Python, whatever is on PATH.
        launcher = self.dir / "ffmpeg"
        launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_FFMPEG}" "$@"\n')
        launcher.chmod(0o755)
        self.env = {
            **base_env,
            "DATA_DIR": str(self.dir / "data"),
            "TMPDIR": str(self.dir / "tmp"),
            "FFMPEG_BINARY": str(launcher),
            **overrides,
        }
        self.workers: dict[str, ServiceProcess] = {}
        self.gateway: ServiceProcess | None = None
        self.url = ""

    def mongo(self):  # type: ignore[no-untyped-def]
        """Return this stack's MongoDB database."""
        from core.settings import load_settings

        settings = load_settings(self.env)
        return MongoClient(settings.mongodb_uri, tz_aware=True)[settings.mongodb_database]

    def start_gateway(self) -> Stack:
        self.gateway = servers.Gateway(f"{self.name}-gateway", self.env, self.dir).start()
        self.url = self.gateway.url
        return self

    def start_worker(
        self, name: str = "w1", queues: str = "convert,notify", concurrency: int = 1
    ) -> ServiceProcess:
        argv = servers.worker_argv(f"{self.name}-{name}", queues, concurrency)
        worker = ServiceProcess(f"{self.name}-{name}", argv, self.env, self.dir).start_worker()
        self.workers[name] = worker
        return worker

    def stop(self) -> None:
        for worker in self.workers.values():
            worker.stop()
        if self.gateway is not None:
            self.gateway.stop()

    # --- Client side -----------------------------------------------------------------------

    def user(self) -> dict[str, str]:
        """Create a user with the real CLI command and return its Bearer header."""
        email = f"chaos-{uuid.uuid4().hex[:8]}@example.test"
        servers.create_user(self.env, email, "a long enough password")
        token = httpx.post(f"{self.url}/login", auth=(email, "a long enough password")).text
        return {"Authorization": f"Bearer {token}"}

    def upload(self, headers: dict[str, str], path: Path, timeout: float = 30) -> httpx.Response:
        with path.open("rb") as fh:
            return httpx.post(
                f"{self.url}/upload",
                headers=headers,
                files={"file": (path.name, fh)},
                timeout=timeout,
            )

    def job(self, headers: dict[str, str], job_id: str) -> dict:
        return httpx.get(f"{self.url}/jobs/{job_id}", headers=headers, timeout=10).json()

    def wait_status(
        self, headers: dict[str, str], job_id: str, statuses: tuple[str, ...], timeout: float = 120
    ) -> dict:
        def check() -> dict | None:
            job = self.job(headers, job_id)
            return job if job.get("status") in statuses else None

        return wait_until(
            check, timeout=timeout, what=f"job {job_id} to reach {statuses}", every=0.25
        )


def processes_named(name: str) -> list:
    """Return the live processes whose command line mentions `name`."""
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(name in part for part in proc.info["cmdline"] or []):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found

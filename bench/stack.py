"""The service under test, on real servers started with the test harness (tests/support/servers.py).

SecantusDB on a free port, aiosmtpd in this process, a fresh RabbitMQ vhost, the gateway under
gunicorn with its production config, and `celery -A tasks worker` processes; users come from the
real `flask --app app users create` command and log in through POST /login.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from pymongo import MongoClient

from tests.support import servers
from tests.support.servers import ServiceProcess, wait_until

PASSWORD = "bench password, long enough"  # noqa: S105 - a throwaway test user


@dataclass
class Upload:
    job_id: str
    started: float  # time.time() when the request began
    answered: float  # time.time() when the 202 arrived
    nbytes: int

    @property
    def seconds(self) -> float:
        return self.answered - self.started


class Stack:
    """Every server of one benchmark run, and a logged-in client of its gateway."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = run_dir
        self.exit = contextlib.ExitStack()
        self.workers: dict[str, ServiceProcess] = {}
        self.gateway: ServiceProcess | None = None
        self.url = ""
        self.token = ""
        self.env: dict[str, str] = {}
        self.mongo_server: servers.MongoServer | None = None

    # --- Start and stop ----------------------------------------------------------------------

    def start(self) -> Stack:
        (self.dir / "tmp").mkdir(parents=True, exist_ok=True)
        self.mongo_server = servers.MongoServer(self.dir / "mongo").start()
        self.exit.callback(self.mongo_server.stop)
        smtp = servers.SmtpServer().start()
        self.exit.callback(smtp.stop)
        broker = self.exit.enter_context(servers.rabbitmq_vhost())
        self.env = {
            **{
                k: v
                for k, v in os.environ.items()
                if k in ("PATH", "HOME", "LANG", "LC_ALL", "PYTHONPATH")
            },
            "APP_ENV": "test",
            "DATA_DIR": str(self.dir / "data"),
            "DATABASE_URL": f"sqlite:///{self.dir / 'users.db'}",
            "MONGODB_URI": self.mongo_server.uri,
            "CELERY_BROKER_URL": broker,
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(smtp.port),
            "MAIL_FROM": "MP3 converter <mp3@example.test>",
            "JWT_SECRET": secrets.token_urlsafe(48),
            "PUBLIC_URL": "http://mp3.example.test",
            "TMPDIR": str(self.dir / "tmp"),
            "WORKER_HEARTBEAT_FILE": str(self.dir / "worker-heartbeat"),
            "LOG_LEVEL": "INFO",
        }
        # The Celery app this process uses for control commands reads the same environment.
        os.environ.update(self.env)
        self._start_gateway()
        self._login()
        return self

    def close(self) -> None:
        for name in list(self.workers):
            self.stop_worker(name)
        if self.gateway is not None:
            self.gateway.stop()
        self.exit.close()

    def _start_gateway(self) -> None:
        self.gateway = servers.Gateway("gateway", self.env, self.dir).start(timeout=90)
        self.url = self.gateway.url

    def _login(self) -> None:
        email = f"bench-{uuid.uuid4().hex[:8]}@example.test"
        servers.create_user(self.env, email, PASSWORD)
        response = httpx.post(f"{self.url}/login", auth=(email, PASSWORD), timeout=30)
        response.raise_for_status()
        self.token = response.text.strip()

    def start_worker(self, name: str, *, queues: str = "convert,notify") -> ServiceProcess:
        """Start `celery -A tasks worker` with one pool process, as production's Deployment does."""
        argv = servers.worker_argv(name, queues, concurrency=1)
        worker = ServiceProcess(name, argv, self.env, self.dir).start_worker()
        self.workers[name] = worker
        return worker

    def stop_worker(self, name: str) -> None:
        self.workers.pop(name).stop()

    def hostname(self, name: str) -> str:
        return f"{name}@{socket.gethostname()}"

    # --- Processes ---------------------------------------------------------------------------

    def worker_pid(self, name: str) -> int:
        return self.workers[name].proc.pid

    def pool_pid(self, name: str) -> int | None:
        """Return the pid of the worker's pool process (the one that runs the tasks)."""
        import psutil

        for child in psutil.Process(self.worker_pid(name)).children():
            if "ffmpeg" not in child.name():
                return child.pid
        return None

    @property
    def gateway_pid(self) -> int:
        return self.gateway.proc.pid

    @property
    def mongo_pid(self) -> int:
        return self.mongo_server.proc.pid

    # --- Client ------------------------------------------------------------------------------

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def db(self):  # type: ignore[no-untyped-def]
        return MongoClient(self.mongo_server.uri, tz_aware=True)["mp3"]

    def upload(self, path: Path, fields: dict[str, str] | None = None) -> Upload:
        """POST the file as multipart (httpx streams it from the file); return the job's id."""
        size = path.stat().st_size
        with path.open("rb") as fh, httpx.Client(timeout=600) as client:
            started = time.time()
            response = client.post(
                f"{self.url}/upload",
                headers=self.headers,
                files={"file": (path.name, fh, "video/mp4")},
                data=fields or {},
            )
            answered = time.time()
        if response.status_code != 202:
            raise RuntimeError(f"upload answered {response.status_code}: {response.text}")
        return Upload(response.json()["job_id"], started, answered, size)

    def upload_stream(self, chunks: Iterator[bytes], size: int, filename: str) -> Upload:
        """POST a multipart body built around a generator of `size` bytes (never held whole)."""
        boundary = f"bench-{uuid.uuid4().hex}"
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{filename}"\r\nContent-Type: video/mp4\r\n\r\n'
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()

        def body() -> Iterator[bytes]:
            yield head
            yield from chunks
            yield tail

        headers = {
            **self.headers,
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(len(head) + size + len(tail)),
        }
        with httpx.Client(timeout=900) as client:
            started = time.time()
            response = client.post(f"{self.url}/upload", headers=headers, content=body())
            answered = time.time()
        if response.status_code != 202:
            raise RuntimeError(f"upload answered {response.status_code}: {response.text}")
        return Upload(response.json()["job_id"], started, answered, size)

    def delete(self, job_id: str) -> None:
        response = httpx.delete(f"{self.url}/jobs/{job_id}", headers=self.headers, timeout=120)
        if response.status_code != 204:
            raise RuntimeError(f"DELETE answered {response.status_code}: {response.text}")

    def download(self, job_id: str) -> tuple[int, float]:
        """GET /jobs/<id>/mp3 and read it to the end; return (bytes, seconds)."""
        total = 0
        with httpx.Client(timeout=600) as client:
            started = time.perf_counter()
            with client.stream(
                "GET", f"{self.url}/jobs/{job_id}/mp3", headers=self.headers
            ) as response:
                if response.status_code != 200:
                    raise RuntimeError(f"download answered {response.status_code}")
                for chunk in response.iter_raw(1024 * 1024):
                    total += len(chunk)
            return total, time.perf_counter() - started

    def wait_job(
        self,
        db,
        job_id: str,
        *,
        notified: bool = True,  # type: ignore[no-untyped-def]
        timeout: float = 900,
        every: float = 0.05,
    ) -> dict:
        """Poll MongoDB until the job ended (and its email went, and its video); return the job."""
        from bson import ObjectId

        oid = ObjectId(job_id)

        def ended() -> dict | None:
            job = db["jobs"].find_one({"_id": oid})
            if job is None or job["status"] not in ("done", "failed", "cancelled"):
                return None
            if job["status"] == "failed":
                raise RuntimeError(f"job {job_id} failed: {job.get('error')}")
            if notified and job["notification"]["state"] not in ("sent", "failed"):
                return None
            if notified and job["status"] == "done" and db["videos.files"].find_one({"_id": oid}):
                # notify deletes the video after the email: the job's work ends there.
                return None
            return job

        return wait_until(ended, timeout=timeout, what=f"job {job_id} to end", every=every)

    def celery(self):  # type: ignore[no-untyped-def]
        """Return the service's Celery app (configured from this run's environment)."""
        import tasks

        return tasks.app


def dump(path: Path, value: object) -> None:
    path.write_text(json.dumps(value, indent=2, default=str))

"""Flower as production runs it, and helpers to follow one job through the live processes."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support import servers
from tests.support.servers import ServiceProcess, wait_until

#: The RabbitMQ management API that feeds Flower's broker view (.ci/run enables the plugin).
BROKER_API = "http://guest:guest@127.0.0.1:15672/api/"


def flower_env(stack_env: dict[str, str], **overrides: str) -> dict[str, str]:
    """Return the environment of `celery -A tasks flower`: the stack's plus Flower's own."""
    return {
        **stack_env,
        "FLOWER_URL_PREFIX": "flower",
        "FLOWER_BASIC_AUTH": f"operator:{secrets.token_urlsafe(12)}",
        "FLOWER_BROKER_API": BROKER_API,
        "FLOWER_MAX_TASKS": "2000",
        "FLOWER_MAX_WORKERS": "20",
        **overrides,
    }


def flower_argv(port: int) -> list[str]:
    return [
        str(servers.VENV_BIN / "celery"),
        "-A",
        "tasks",
        "flower",
        f"--port={port}",
        "--address=127.0.0.1",
    ]


@dataclass
class Flower:
    """A running Flower: its base URL (with the prefix) and the credentials it accepts."""

    url: str
    auth: tuple[str, str]
    process: ServiceProcess

    def get(self, path: str, *, auth: bool = True, **kwargs) -> httpx.Response:  # type: ignore[no-untyped-def]
        return httpx.get(
            f"{self.url}{path}", auth=self.auth if auth else None, timeout=10, **kwargs
        )


@pytest.fixture(scope="module")
def flower(stack_env: dict[str, str], run_dir: Path, worker) -> Iterator[Flower]:
    """Flower with the project's settings, against the run's RabbitMQ vhost and worker."""
    servers.wait_for_port(15672, timeout=30, name="the RabbitMQ management API")
    port = servers.free_port()
    env = flower_env(stack_env)
    proc = ServiceProcess("flower", flower_argv(port), env, run_dir).start()
    user, _, password = env["FLOWER_BASIC_AUTH"].partition(":")
    running = Flower(f"http://127.0.0.1:{port}/flower", (user, password), proc)

    def answers() -> bool:
        if proc.proc.poll() is not None:
            raise AssertionError(f"Flower exited:\n{proc.log()[-3000:]}")
        try:
            return running.get("/healthcheck", auth=False).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(answers, timeout=60, what="Flower to answer /flower/healthcheck")
    # Flower knows a task only from the events it receives: wait until the worker's heartbeat
    # events reach it, so that none of the conversion's events is missed.
    wait_until(
        lambda: 'flower_worker_online{worker="worker@' in running.get("/metrics", auth=False).text,
        timeout=60,
        what="Flower to receive the worker's events",
    )
    yield running
    proc.stop()


def json_lines(path: Path, ignore: tuple[str, ...] = ()) -> list[dict]:
    """Return the log file's lines, each parsed as the JSON object it must be.

    Lines starting with one of `ignore` are left out.
    """
    lines = []
    text = path.read_text(errors="replace")
    # A last line without its newline is one the process is still writing: not yet a record.
    complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    for number, line in enumerate(complete.splitlines(), 1):
        if not line.strip() or (ignore and line.startswith(ignore)):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise AssertionError(f"{path.name}:{number} is not JSON: {line[:300]!r}") from None
        assert isinstance(record, dict), f"{path.name}:{number} is not a JSON object"
        lines.append(record)
    return lines


class LiveUser:
    """A user of the live (gunicorn) gateway, logged in over HTTP."""

    def __init__(self, base: str, auth) -> None:  # type: ignore[no-untyped-def]
        user = auth.create()
        self.base = base
        token = httpx.post(f"{base}/login", auth=(user.email, user.password), timeout=10)
        assert token.status_code == 200, token.text
        self.headers = {"Authorization": f"Bearer {token.text}"}

    def upload(self, path: Path) -> httpx.Response:
        with path.open("rb") as fh:
            return httpx.post(
                f"{self.base}/upload",
                headers=self.headers,
                files={"file": (path.name, fh, "video/mp4")},
                timeout=60,
            )

    def wait(self, job_id: str, timeout: float = 90) -> dict:
        def ended() -> dict | None:
            job = httpx.get(f"{self.base}/jobs/{job_id}", headers=self.headers, timeout=10).json()
            return job if job["status"] in ("done", "failed", "cancelled") else None

        return wait_until(ended, timeout=timeout, what=f"job {job_id} to end", every=0.25)

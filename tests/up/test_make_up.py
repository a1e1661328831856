"""`make up` (python -m app.up): the whole stack on embedded defaults, used as a newcomer would."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
from email import message_from_bytes, policy
from pathlib import Path

import httpx
import psutil
import pytest

from app.up import plan
from tests.support import servers
from tests.support.media import duration_of, make_video
from tests.support.servers import wait_until

pytestmark = pytest.mark.e2e

#: Variables that would point the stack at the test run's services instead of embedded ones.
SERVICE_VARIABLES = {
    "APP_ENV",
    "DATA_DIR",
    "DATABASE_URL",
    "MONGODB_URI",
    "CELERY_BROKER_URL",
    "SMTP_HOST",
    "SMTP_PORT",
    "SMTP_USERNAME",
    "SMTP_PASSWORD",
    "SMTP_STARTTLS",
    "MAIL_FROM",
    "JWT_SECRET",
    "JWT_TTL_SECONDS",
    "PUBLIC_URL",
    "WORKER_HEARTBEAT_FILE",
    "METRICS_PORT",
    "TMPDIR",
}
MP3C = servers.VENV_BIN / "mp3c"


def clean_env(data_dir: Path, ports: dict[str, int]) -> dict[str, str]:
    """Return this process's environment without any *_URL or service variable, ports moved."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in SERVICE_VARIABLES and not k.startswith(("FLOWER_", "MP3C_", "MP3_UP_"))
    }
    env.update(
        DATA_DIR=str(data_dir),
        METRICS_PORT=str(ports["metrics"]),
        MP3_UP_GATEWAY_PORT=str(ports["gateway"]),
        MP3_UP_FLOWER_PORT=str(ports["flower"]),
        MP3_UP_MONGO_PORT=str(ports["mongodb"]),
        MP3_UP_SMTP_PORT=str(ports["mail"]),
    )
    return env


class Up:
    """One `python -m app.up` in the foreground of its own terminal-like process group."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log_path = env, log
        self.lines: list[str] = []
        self.proc: subprocess.Popen | None = None

    def start(self) -> Up:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.up"],
            cwd=servers.ROOT,
            env=self.env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self) -> None:
        with self.log_path.open("a") as log:
            for line in self.proc.stdout:  # type: ignore[union-attr]
                self.lines.append(line.rstrip("\n"))
                log.write(line)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_ready(self) -> str:
        def banner() -> bool:
            if self.proc.poll() is not None:  # type: ignore[union-attr]
                raise AssertionError(f"make up exited:\n{self.output[-4000:]}")
            # The banner reaches the output line by line: wait for its last one, or the lines
            # a test reads (the demo login) may not be there yet.
            return "Ctrl-C stops everything." in self.output

        wait_until(banner, timeout=180, what="make up's banner", every=0.25)
        return self.output

    def family(self) -> set[tuple[int, float]]:
        """Return (pid, start time) of every process under this one."""
        parent = psutil.Process(self.proc.pid)  # type: ignore[union-attr]
        return {(p.pid, p.create_time()) for p in parent.children(recursive=True)}

    def interrupt(self) -> int:
        """Press Ctrl-C: SIGINT to the foreground process group, as a terminal sends it."""
        os.killpg(self.proc.pid, signal.SIGINT)  # type: ignore[union-attr]
        try:
            return self.proc.wait(60)  # type: ignore[union-attr]
        except subprocess.TimeoutExpired:
            servers.stop_process(self.proc)  # type: ignore[arg-type]
            raise AssertionError(f"make up did not stop:\n{self.output[-4000:]}") from None


def alive(family: set[tuple[int, float]]) -> list[str]:
    """Return the processes of `family` that still run (not zombies, not a reused pid)."""
    left = []
    for pid, started in family:
        try:
            proc = psutil.Process(pid)
            if proc.create_time() == started and proc.status() != psutil.STATUS_ZOMBIE:
                left.append(f"{pid} {' '.join(proc.cmdline())}")
        except psutil.NoSuchProcess:
            continue
    return left


def mp3c(env: dict[str, str], *args: object, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(MP3C), *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )


@pytest.fixture
def ports() -> dict[str, int]:
    names = ("gateway", "flower", "metrics", "mongodb", "mail")
    return {name: servers.free_port() for name in names}


def test_make_up_converts_mails_and_stops_cleanly(tmp_path: Path, ports: dict[str, int]) -> None:
    data = tmp_path / "var"
    env = clean_env(data, ports)
    gateway, flower = f"http://127.0.0.1:{ports['gateway']}", f"http://127.0.0.1:{ports['flower']}"
    up = Up(env, tmp_path / "make-up.log").start()
    try:
        banner = up.wait_ready()
        assert httpx.get(f"{gateway}/readyz", timeout=5).status_code == 200
        found = re.search(r"log in as (\S+) with the password (\S+)", banner)
        assert found, banner
        email, password = found.groups()
        assert f"Flower            http://localhost:{ports['flower']}/flower/" in banner

        client_env = {
            **{k: v for k, v in env.items() if not k.startswith("MP3C_")},
            "MP3C_CONFIG_DIR": str(tmp_path / "mp3c"),
        }
        login = mp3c(client_env, "login", "--url", gateway, stdin=f"{email}\n{password}\n")
        assert login.returncode == 0, login.stderr
        video = make_video(tmp_path, "mp4", seconds=3, name="video.mp4")
        done = mp3c(client_env, "convert", video, "--wait", "-o", tmp_path / "out")
        assert done.returncode == 0, done.stderr + up.output[-3000:]
        assert abs(duration_of(tmp_path / "out" / "video.mp3") - 3.0) < 0.1
        job_id = mp3c(client_env, "jobs").stdout.split("\t")[0]

        # The sink wrote the email as a file, and logged its link.
        link = f"http://localhost:{ports['gateway']}/jobs/{job_id}/mp3"
        eml = wait_until(
            lambda: sorted((data / "mail").glob(f"*{job_id}*.eml")),
            timeout=30,
            what="the email's .eml file",
        )[0]
        message = message_from_bytes(eml.read_bytes(), policy=policy.default)
        assert message["To"] == email
        assert link in message.get_body(preferencelist=("plain",)).get_content()
        wait_until(lambda: f"link: {link}" in up.output, timeout=10, what="the link in the log")

        # Flower sees the worker and the task through the filesystem broker's events.
        workers = wait_until(
            lambda: httpx.get(f"{flower}/flower/workers?json=1", timeout=5).json()["data"],
            timeout=30,
            what="Flower to list the worker",
        )
        assert workers[0]["hostname"].startswith("celery@")
        query = {
            "draw": 1,
            "start": 0,
            "length": 50,
            "search[value]": "",
            "order[0][column]": 0,
            "order[0][dir]": "asc",
            "columns[0][data]": "name",
        }

        def states() -> dict[str, str]:
            answer = httpx.get(f"{flower}/flower/tasks/datatable", params=query, timeout=5)
            found = {t["uuid"]: t["state"] for t in answer.json()["data"]}
            # Events come by polling the broker's folder: the last may still be on its way.
            return found if found.get(f"{job_id}-notify") == "SUCCESS" else {}

        tasks = wait_until(states, timeout=30, what="Flower to see both tasks succeed", every=0.5)
        assert tasks[f"{job_id}-convert"] == "SUCCESS"

        family = up.family()
        assert len(family) >= 5
    finally:
        code = up.interrupt()
    assert code in (0, 130), up.output[-3000:]
    assert alive(family) == []
    assert "Traceback" not in up.output

    # A second start finds the data of the first: the user, the job, and no new password.
    again = Up(env, tmp_path / "make-up-2.log").start()
    try:
        banner = again.wait_ready()
        assert "with the password" not in banner
        assert f"log in as {email} (password shown at the first start)" in banner
        relogin = mp3c(client_env, "login", "--url", gateway, stdin=f"{email}\n{password}\n")
        assert relogin.returncode == 0, relogin.stderr
        assert mp3c(client_env, "jobs").stdout.startswith(f"{job_id}\tdone\t")
        family = again.family()
    finally:
        again.interrupt()
    assert alive(family) == []


def test_a_port_in_use_gives_one_clear_line(tmp_path: Path, ports: dict[str, int]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", ports["gateway"]))
        taken.listen()
        done = subprocess.run(
            [sys.executable, "-m", "app.up"],
            cwd=servers.ROOT,
            capture_output=True,
            text=True,
            env=clean_env(tmp_path / "var", ports),
            timeout=60,
        )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"make up: port {ports['gateway']} (gateway) is already in use: stop what listens "
        f"there, or run with MP3_UP_GATEWAY_PORT=<another port>"
    ]


def test_each_variable_swaps_in_a_real_service() -> None:
    data = "/nonexistent/mp3-up-plan"  # plan() only decides; it writes nothing.
    embedded = plan({"DATA_DIR": data})
    assert set(embedded.processes) == {"mongodb", "mail", "gateway", "worker", "flower"}
    assert embedded.ports["gateway"] == ("0.0.0.0", 8080)  # noqa: S104
    assert embedded.ports["flower"][1] == 5555
    assert embedded.ports["mongodb"] == ("127.0.0.1", 27017)
    assert embedded.ports["mail"] == ("127.0.0.1", 8025)
    assert "CELERY_BROKER_URL" not in embedded.env and "DATABASE_URL" not in embedded.env

    real = {
        "MONGODB_URI": "mongodb://db.example:27017/mp3",
        "SMTP_HOST": "smtp.example",
        "CELERY_BROKER_URL": "amqp://guest:guest@mq.example//",
        "DATABASE_URL": "mysql+pymysql://u@sql.example/auth",
        "DATA_DIR": data,
    }
    swapped = plan(real)
    assert set(swapped.processes) == {"gateway", "worker", "flower"}
    for name, value in real.items():
        if name != "DATA_DIR":
            assert swapped.env[name] == value
    only_mongo = plan({"MONGODB_URI": real["MONGODB_URI"], "DATA_DIR": data})
    assert set(only_mongo.processes) == {"mail", "gateway", "worker", "flower"}

"""Start and stop the real services the integration tests talk to.

Every server here is real: SecantusDB speaks MongoDB's wire protocol over WiredTiger, aiosmtpd is
a real SMTP server, MariaDB and RabbitMQ are the machine's own. Each test run gets its own
database, vhost and data folder, so runs never see each other's data.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pymysql
from aiosmtpd.controller import Controller

VENV_BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]


class ServiceUnavailable(RuntimeError):
    """A service the tests need could not be reached; the message names it."""


#: Ports for the test servers, below Linux's ephemeral range (32768 and up by default), where
#: outgoing connections take their source ports: one of those could otherwise take a port in
#: the time between this check and the server's own bind.
TEST_PORTS = range(20000, 32768)
_handed_out: set[int] = set()
#: Its own generator: pytest-randomly reseeds the shared one before every test.
_pick = random.SystemRandom()


def free_port() -> int:
    """Return a TCP port on the loopback that nothing uses now and no earlier call returned."""
    for _ in range(1000):
        port = _pick.choice(TEST_PORTS)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {TEST_PORTS}")


def wait_for_port(port: int, *, timeout: float, name: str, host: str = "127.0.0.1") -> None:
    """Wait until something accepts connections on the port, or raise naming the service."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.1)
    raise ServiceUnavailable(f"{name} did not accept connections on {host}:{port} in {timeout} s")


def wait_until(check: Callable[[], object], *, timeout: float, what: str, every: float = 0.1):
    """Call `check` until it returns something truthy; return it, or fail saying `what`."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def stop_process(proc: subprocess.Popen, *, timeout: float = 10) -> None:
    """Stop a process group politely, then by force."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


# --- MongoDB-wire server ---------------------------------------------------------------------


@dataclass
class MongoServer:
    """A SecantusDB server on a free port with its data in its own folder."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/mp3?directConnection=true"

    def start(self) -> MongoServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir.parent / f"secantus-{self.port}.log", "ab")
        self.proc = subprocess.Popen(
            [
                str(VENV_BIN / "secantusd-py"),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--storage-path",
                str(self.data_dir),
                "--standalone",
                "--oplog-max-entries",
                "1000",
                "--log-level",
                "WARNING",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for_port(self.port, timeout=30, name="the MongoDB-wire server (SecantusDB)")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)


# --- SMTP server -----------------------------------------------------------------------------


class Inbox:
    """What the test SMTP server received, one parsed message per email."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        # Addresses that start with `bounce-` do not exist: a permanent refusal, as relays give.
        if address.startswith("bounce-"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        self.messages.append(message)  # type: ignore[arg-type]
        return "250 OK"

    def for_job(self, job_id: str) -> list[EmailMessage]:
        """Return the emails about one job."""
        return [m for m in self.messages if m.get("X-MP3-Job") == job_id]


class SmtpServer:
    """A real aiosmtpd server in this process, which the tests may stop and start again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.inbox = Inbox()
        self.controller: Controller | None = None

    def start(self) -> SmtpServer:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


# --- MariaDB ---------------------------------------------------------------------------------


@contextlib.contextmanager
def mariadb_database() -> Iterator[str]:
    """Create a fresh MariaDB database for this run; yield its SQLAlchemy URL; drop it."""
    name = f"mp3test_{uuid.uuid4().hex[:12]}"
    try:
        conn = pymysql.connect(
            host="127.0.0.1", port=3306, user="root", password="", connect_timeout=5
        )
    except pymysql.MySQLError as exc:
        raise ServiceUnavailable(f"MariaDB at 127.0.0.1:3306 cannot be reached: {exc}") from exc
    with conn:
        conn.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        yield f"mysql+pymysql://root@127.0.0.1:3306/{name}?charset=utf8mb4"
    finally:
        conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="")
        with conn:
            conn.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")


# --- RabbitMQ --------------------------------------------------------------------------------


def _rabbitmqctl(*args: str) -> None:
    ctl = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    result = subprocess.run([ctl, *args], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise ServiceUnavailable(f"RabbitMQ: rabbitmqctl {' '.join(args)} failed: {result.stderr}")


@contextlib.contextmanager
def rabbitmq_vhost() -> Iterator[str]:
    """Create a fresh RabbitMQ vhost for this run; yield the broker URL; delete the vhost."""
    try:
        wait_for_port(5672, timeout=5, name="RabbitMQ")
    except ServiceUnavailable as exc:
        raise ServiceUnavailable(f"RabbitMQ at 127.0.0.1:5672 cannot be reached: {exc}") from exc
    vhost = f"mp3test-{uuid.uuid4().hex[:12]}"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    try:
        yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    finally:
        with contextlib.suppress(ServiceUnavailable, subprocess.TimeoutExpired):
            _rabbitmqctl("delete_vhost", vhost)


# --- Processes of the service itself ---------------------------------------------------------


class ServiceProcess:
    """One process of the service (worker, gateway, Flower) with its own log file."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], log_dir: Path) -> None:
        self.name, self.argv, self.env = name, argv, dict(env)
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> ServiceProcess:
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=20)

    def kill(self) -> None:
        """SIGKILL the whole process group at once, as a machine dying would."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_since_start(self) -> str:
        """Return what the process logged since its latest start."""
        with open(self.log_path, "rb") as fh:
            fh.seek(getattr(self, "log_offset", 0))
            return fh.read().decode(errors="replace")

    def start_worker(self) -> ServiceProcess:
        """Start a celery worker and wait for its `ready.` line."""
        self.start()
        wait_until(
            lambda: "ready." in self.log_since_start() or self.proc.poll() is not None,
            timeout=60,
            what=f"{self.name} to be ready",
        )
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited at start:\n{self.log_since_start()[-3000:]}")
        return self


def create_user(env: Mapping[str, str], email: str, password: str) -> None:
    """Create a user with the real CLI command (`flask --app app users create`)."""
    subprocess.run(
        [str(VENV_BIN / "flask"), "--app", "app", "users", "create", email, "--password", password],
        env=env,
        check=True,
        capture_output=True,
        cwd=ROOT,
    )


def worker_argv(hostname: str, queues: str = "convert,notify", concurrency: int = 1) -> list[str]:
    """Return the command of a real `celery -A tasks worker` on the queues."""
    return [
        str(VENV_BIN / "celery"), "-A", "tasks", "worker", "-Q", queues,
        "--hostname", f"{hostname}@%h", "--concurrency", str(concurrency),
        "--loglevel", "INFO", "--without-gossip", "--without-mingle",
    ]  # fmt: skip


class Gateway(ServiceProcess):
    """The gateway under gunicorn, as production runs it, on a free port of its own.

    `start()` returns once it answers /healthz, so a test may also stop and start it again.
    """

    def __init__(self, name: str, env: Mapping[str, str], log_dir: Path, **overrides: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **env,
            "GUNICORN_CMD_ARGS": "--config python:app.gunicorn_conf",
            "METRICS_PORT": str(free_port()),
            **overrides,
        }
        argv = [str(VENV_BIN / "gunicorn"), "--bind", f"127.0.0.1:{self.port}", "app:create_app()"]
        super().__init__(name, argv, env, log_dir)

    def start(self, timeout: float = 60) -> Gateway:
        super().start()
        wait_until(self._healthy, timeout=timeout, what=f"{self.name} to answer /healthz",
                   every=0.2)  # fmt: skip
        return self

    def _healthy(self) -> bool:
        import httpx

        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited:\n{self.log_since_start()[-3000:]}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

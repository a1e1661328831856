"""Fixtures shared by every test: real services for the run, the app, a client and logins.

The services are session-scoped and real (see tests/support/servers.py). A service that cannot be
reached fails the run with a message naming it; nothing is ever skipped for want of a service.
"""

from __future__ import annotations

import base64
import os
import secrets
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import servers
from tests.support.servers import ServiceProcess, ServiceUnavailable

PASSWORD = "correct horse battery staple"


def _need(what: str, start):  # type: ignore[no-untyped-def]
    try:
        return start()
    except ServiceUnavailable as exc:
        pytest.fail(f"{what} is needed by the tests and is not available: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder for this run's data, logs and temporary files."""
    return tmp_path_factory.mktemp("run")


@pytest.fixture(scope="session")
def mongo_server(run_dir: Path) -> Iterator[servers.MongoServer]:
    server = _need(
        "The MongoDB-wire server", lambda: servers.MongoServer(run_dir / "mongo").start()
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[servers.SmtpServer]:
    server = _need("The SMTP server", lambda: servers.SmtpServer().start())
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mariadb_url() -> Iterator[str]:
    manager = servers.mariadb_database()
    yield _need("MariaDB", manager.__enter__)
    manager.__exit__(None, None, None)


@pytest.fixture(scope="session")
def broker_url() -> Iterator[str]:
    manager = servers.rabbitmq_vhost()
    yield _need("RabbitMQ", manager.__enter__)
    manager.__exit__(None, None, None)


@pytest.fixture(scope="session")
def stack_env(
    run_dir: Path, mongo_server, smtp_server, mariadb_url: str, broker_url: str
) -> dict[str, str]:
    """The environment of the service under test, pointing at this run's real services.

    It is also put into this process's environment, so the Celery app that the in-process gateway
    publishes with reads the same broker as the worker processes.
    """
    env = {
        "APP_ENV": "test",
        "DATA_DIR": str(run_dir / "data"),
        "DATABASE_URL": mariadb_url,
        "MONGODB_URI": mongo_server.uri,
        "CELERY_BROKER_URL": broker_url,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_server.port),
        "MAIL_FROM": "MP3 converter <mp3@example.test>",
        "JWT_SECRET": secrets.token_urlsafe(48),
        "PUBLIC_URL": "http://mp3.example.test",
        "TMPDIR": str(run_dir / "tmp"),
        "WORKER_HEARTBEAT_FILE": str(run_dir / "worker-heartbeat"),
        "LOG_LEVEL": "INFO",
    }
    (run_dir / "tmp").mkdir(exist_ok=True)
    os.environ.update(env)
    return env


@pytest.fixture(scope="session")
def settings(stack_env: dict[str, str]):
    from core.settings import load_settings

    return load_settings(stack_env)


@pytest.fixture(scope="session")
def app(settings):
    from app import create_app

    return create_app({"TESTING": True}, settings=settings)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture(scope="session")
def mongo_db(settings):
    from core import mongo

    return mongo.database(settings.mongodb_uri, settings.mongodb_database)


# --- Users and logins ------------------------------------------------------------------------


@dataclass
class User:
    email: str
    password: str
    token: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def basic(email: str, password: str) -> dict[str, str]:
    """Return the HTTP Basic header for the credentials (UTF-8, as the course's curl sends)."""
    raw = f"{email}:{password}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


class AuthActions:
    """Create users and log them in through the real POST /login."""

    def __init__(self, app, client) -> None:
        self.app, self.client = app, client

    def create(
        self, email: str | None = None, password: str = PASSWORD, admin: bool = False
    ) -> User:
        from app.auth.users import create_user
        from app.services import Services

        email = email or f"user-{uuid.uuid4().hex[:10]}@example.test"
        services: Services = self.app.extensions["mp3"]
        create_user(services.sessions, email, password, admin=admin)
        return User(email, password)

    def login(self, user: User | None = None) -> User:
        user = user or self.create()
        response = self.client.post("/login", headers=basic(user.email, user.password))
        assert response.status_code == 200, response.get_data(as_text=True)
        user.token = response.get_data(as_text=True)
        return user


@pytest.fixture
def auth(app, client) -> AuthActions:
    return AuthActions(app, client)


# --- Processes of the service ----------------------------------------------------------------

_started_workers: list[str] = []


class Worker(ServiceProcess):
    """A real `celery -A tasks worker` process on both queues."""

    def restart(self) -> Worker:
        self.stop()
        self.start_worker()
        return self


@pytest.fixture(scope="session")
def worker(stack_env: dict[str, str], run_dir: Path) -> Iterator[Worker]:
    """The run's one shared worker; a second session worker would race it for the same messages."""
    if _started_workers:
        raise RuntimeError(f"a shared worker is already running ({_started_workers}); use it")
    _started_workers.append("worker")
    proc = Worker("worker", servers.worker_argv("worker", concurrency=2), stack_env, run_dir)
    proc.start_worker()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def live_gateway(stack_env: dict[str, str], run_dir: Path) -> Iterator[str]:
    """The gateway under gunicorn, as production runs it; yields its base URL."""
    gateway = servers.Gateway("gateway", stack_env, run_dir).start()
    live_gateway_process.append(gateway)
    yield gateway.url
    gateway.stop()


#: The gateway's ServiceProcess, for tests that read its log or its memory.
live_gateway_process: list[ServiceProcess] = []


def pytest_report_header(config) -> str:  # type: ignore[no-untyped-def]
    return f"python: {sys.executable}"

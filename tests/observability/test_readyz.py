"""GET /readyz: 503 naming the dependency that is down or silent, always within 2 s."""

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import Iterator
from contextlib import closing

import pytest

from tests.support import servers

pytestmark = pytest.mark.integration

DEADLINE = 2.0


def closed_port() -> int:
    """Return a loopback port nothing listens on (connections are refused)."""
    return servers.free_port()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word, like a hung server."""
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield sock.getsockname()[1]


def make_app(settings, **changes):  # type: ignore[no-untyped-def]
    from app import create_app

    return create_app({"TESTING": True}, settings=dataclasses.replace(settings, **changes))


def ready(app) -> tuple[int, dict, float]:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    response = app.test_client().get("/readyz")
    return response.status_code, response.get_json(), time.monotonic() - started


def assert_names(body: dict, failing: str) -> None:
    assert body["status"] == "unavailable"
    assert body["checks"][failing] != "ok"
    assert [name for name, state in body["checks"].items() if state != "ok"] == [failing]
    assert body["error"]["code"] == "not_ready"
    assert failing in body["error"]["message"]


def test_ready_when_every_dependency_answers(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["checks"] == {"sql": "ok", "mongodb": "ok", "broker": "ok"}
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_mongodb_on_a_closed_port(settings):
    app = make_app(
        settings, mongodb_uri=f"mongodb://127.0.0.1:{closed_port()}/mp3?directConnection=true"
    )
    status, body, seconds = ready(app)
    assert status == 503 and seconds < DEADLINE, (body, seconds)
    assert_names(body, "mongodb")


def test_broker_on_a_closed_port(settings):
    app = make_app(settings, broker_url=f"amqp://guest:guest@127.0.0.1:{closed_port()}//")
    status, body, seconds = ready(app)
    assert status == 503 and seconds < DEADLINE, (body, seconds)
    assert_names(body, "broker")


def test_sql_on_a_closed_port(settings):
    from app import db

    # The app migrates its schema at start-up, so it starts on the real database and then
    # loses it: its engine now points at a port where no MariaDB listens.
    app = make_app(settings)
    app.extensions["mp3"].engine = db.make_engine(
        f"mysql+pymysql://root@127.0.0.1:{closed_port()}/mp3"
    )
    status, body, seconds = ready(app)
    assert status == 503 and seconds < DEADLINE, (body, seconds)
    assert_names(body, "sql")


@pytest.mark.parametrize("dependency", ["mongodb", "broker", "sql"])
def test_a_dependency_that_accepts_connections_but_never_answers(settings, silent_port, dependency):
    from app import db

    if dependency == "mongodb":
        app = make_app(
            settings, mongodb_uri=f"mongodb://127.0.0.1:{silent_port}/mp3?directConnection=true"
        )
    elif dependency == "broker":
        app = make_app(settings, broker_url=f"amqp://guest:guest@127.0.0.1:{silent_port}//")
    else:
        app = make_app(settings)
        app.extensions["mp3"].engine = db.make_engine(
            f"mysql+pymysql://root@127.0.0.1:{silent_port}/mp3"
        )
    status, body, seconds = ready(app)
    assert status == 503 and seconds < DEADLINE, (body, seconds)
    assert_names(body, dependency)
    # A second probe while the first check still hangs answers as fast, without a new check.
    status, body, seconds = ready(app)
    assert status == 503 and seconds < DEADLINE, (body, seconds)
    assert_names(body, dependency)


def test_mongodb_stopped_while_the_gateway_runs(settings, run_dir):
    mongo = servers.MongoServer(run_dir / "readyz-mongo").start()
    try:
        app = make_app(settings, mongodb_uri=mongo.uri)
        status, body, _ = ready(app)
        assert status == 200, body
    finally:
        mongo.stop()
    time.sleep(1.1)  # Past the answer the previous probes share.
    status, body, seconds = ready(app)
    assert status == 503 and seconds < DEADLINE, (body, seconds)
    assert_names(body, "mongodb")

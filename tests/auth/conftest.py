"""Fixtures of the auth tests: a client address of each test's own, an app per SQL database."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterator

import pytest

from tests.support import servers


def fresh_address() -> str:
    """Return a client address no other test uses (IPv6's documentation prefix, RFC 3849)."""
    return f"2001:db8::{secrets.token_hex(2)}:{secrets.token_hex(2)}"


@pytest.fixture
def client(app):
    """A test client with an address of its own.

    Failed logins count against the client's address in the throttle that every app of the run
    shares; with its own address a test here can fail as often as it needs without locking out
    another test's logins.
    """
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = fresh_address()
    return client


# --- One app per SQL database --------------------------------------------------------------------


@pytest.fixture(scope="session")
def fresh_mariadb_url(mariadb_url: str) -> Iterator[str]:
    """A MariaDB database of its own (on the run's server), for tests that list every user."""
    with servers.mariadb_database() as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'users.db'}"


def app_on(settings, database_url: str):  # type: ignore[no-untyped-def]
    """Build the gateway with its users in `database_url` (everything else as the run has it)."""
    from app import create_app

    return create_app(
        {"TESTING": True}, settings=dataclasses.replace(settings, database_url=database_url)
    )


@pytest.fixture(scope="session")
def sqlite_app(settings, sqlite_url: str):  # type: ignore[no-untyped-def]
    return app_on(settings, sqlite_url)


@pytest.fixture(scope="session")
def mariadb_app(settings, fresh_mariadb_url: str):  # type: ignore[no-untyped-def]
    return app_on(settings, fresh_mariadb_url)


@pytest.fixture(params=["sqlite", "mariadb"])
def sql_app(request):  # type: ignore[no-untyped-def]
    """The gateway on SQLite, then on MariaDB: the same code must work on both."""
    return request.getfixturevalue(f"{request.param}_app")


@pytest.fixture
def sql_client(sql_app):  # type: ignore[no-untyped-def]
    client = sql_app.test_client()
    client.environ_base["REMOTE_ADDR"] = fresh_address()
    return client

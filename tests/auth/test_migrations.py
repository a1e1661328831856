"""The users schema: Alembic migrations run at every start-up, on SQLite and on MariaDB alike."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
from collections.abc import Iterator

import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from app import db
from app.auth.users import create_user, find_user
from tests.auth.conftest import app_on
from tests.support import servers

pytestmark = pytest.mark.integration


def alembic_config(connection) -> Config:  # type: ignore[no-untyped-def]
    config = Config()
    config.set_main_option("script_location", str(db.MIGRATIONS))
    config.attributes["connection"] = connection
    return config


HEAD = ScriptDirectory.from_config(alembic_config(None)).get_current_head()


@pytest.fixture(params=["sqlite", "mariadb"])
def database_url(request, tmp_path, mariadb_url) -> Iterator[str]:
    """A database that has never been migrated."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh' / 'users.db'}"
        return
    with servers.mariadb_database() as url:
        yield url


def revision(engine) -> str | None:  # type: ignore[no-untyped-def]
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.scalar(text("SELECT version_num FROM alembic_version"))


def test_create_app_twice_on_one_database(settings, database_url):
    first = app_on(settings, database_url)
    assert revision(first.extensions["mp3"].engine) == HEAD
    create_user(first.extensions["mp3"].sessions, "kept@example.test", "a long password")
    second = app_on(settings, database_url)
    assert revision(second.extensions["mp3"].engine) == HEAD
    assert find_user(second.extensions["mp3"].sessions, "kept@example.test") is not None
    for app in (first, second):
        app.extensions["mp3"].engine.dispose()


def test_migrate_again_changes_nothing(database_url):
    engine = db.make_engine(database_url)
    for _ in range(3):
        db.migrate(engine)
    assert revision(engine) == HEAD
    tables = set(inspect(engine).get_table_names())
    assert tables == {"alembic_version", "users"}
    engine.dispose()


MIGRATE = """
import sys, time
from pathlib import Path
from app import db
engine = db.make_engine(sys.argv[1])
ready, go = Path(sys.argv[2]), Path(sys.argv[3])
ready.touch()
while not go.exists():
    time.sleep(0.005)
db.migrate(engine)
"""


def test_processes_starting_together_all_migrate(database_url, tmp_path):
    # gunicorn's workers and the gateway's replicas all migrate as they start, at the same moment:
    # each process gets ready (imports done), then all are let go at once.
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{n}" for n in range(3)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATE, database_url, str(flag), str(go)],
            cwd=servers.ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for flag in ready
    ]
    try:
        servers.wait_until(
            lambda: (
                all(flag.exists() for flag in ready) or any(p.poll() is not None for p in procs)
            ),
            timeout=60,
            what="the migrating processes to be ready",
        )
    finally:
        go.touch()
    outputs = [proc.communicate(timeout=120)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 3, "\n".join(outputs)
    engine = db.make_engine(database_url)
    assert revision(engine) == HEAD
    engine.dispose()


def _connect_at(url: str, barrier, errors) -> None:  # type: ignore[no-untyped-def]
    engine = db.make_engine(url)
    barrier.wait()
    try:
        with engine.connect():
            errors.put(None)
    except Exception as exc:
        errors.put(repr(exc))


def test_processes_opening_a_new_sqlite_database_at_once_all_connect(tmp_path):
    # The first connections to a new SQLite file switch it to WAL; the ones that lose that race
    # used to fail with "database is locked" (a quarter of the rounds of 8 here).
    forked = multiprocessing.get_context("fork")
    failures = []
    for round_ in range(60):
        url = f"sqlite:///{tmp_path}/round-{round_}.db"
        barrier, errors = forked.Barrier(8), forked.Queue()
        procs = [forked.Process(target=_connect_at, args=(url, barrier, errors)) for _ in range(8)]
        for proc in procs:
            proc.start()
        failures += [error for error in (errors.get(timeout=60) for _ in procs) if error]
        for proc in procs:
            proc.join(30)
    assert failures == []


def test_down_to_nothing_and_up_again(database_url):
    engine = db.make_engine(database_url)
    db.migrate(engine)
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), "base")
    assert "users" not in inspect(engine).get_table_names()
    db.migrate(engine)
    assert revision(engine) == HEAD
    engine.dispose()


def test_a_database_made_by_the_first_migration_is_upgraded(settings, database_url):
    engine = db.make_engine(database_url)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0001")
    engine.dispose()
    app = app_on(settings, database_url)
    sessions = app.extensions["mp3"].sessions
    assert revision(app.extensions["mp3"].engine) == HEAD
    create_user(sessions, "ba@example.test", "a long password")
    create_user(sessions, "bä@example.test", "another long password")
    assert find_user(sessions, "bä@example.test").email == "bä@example.test"
    app.extensions["mp3"].engine.dispose()


def test_emails_are_compared_byte_for_byte_on_mariadb(fresh_mariadb_url, mariadb_app):
    engine = mariadb_app.extensions["mp3"].engine
    with engine.connect() as connection:
        collation = connection.scalar(
            text(
                "SELECT collation_name FROM information_schema.columns"
                " WHERE table_schema = DATABASE() AND table_name = 'users'"
                " AND column_name = 'email'"
            )
        )
    assert collation == "utf8mb4_bin"

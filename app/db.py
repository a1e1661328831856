"""The SQL database of users: engine, sessions and schema migrations."""

from __future__ import annotations

import fcntl
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

MIGRATIONS = Path(__file__).with_name("migrations")

#: The name of the lock that lets one process at a time migrate a shared database.
MIGRATION_LOCK = "mp3_converter_migrations"
MIGRATION_LOCK_SECONDS = 120
#: How long a SQLite connection waits for another one's lock.
SQLITE_TIMEOUT = 15


class Base(DeclarativeBase):
    """Base class of the SQL models."""


def _sqlite_file(url: str | URL) -> Path | None:
    """Return the database file of a SQLite URL, None for any other database or in memory."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database)


def _use_wal(dbapi_connection: sqlite3.Connection) -> None:
    """Put the database in WAL mode, which lets readers go on while a user is being written.

    The mode is kept in the file, so only the first connections to a new database switch it.
    Those that race for the switch get "database is locked" at once: SQLite does not wait on
    its busy timeout there, as waiting could deadlock. They look again until it is done.
    """
    deadline = time.monotonic() + SQLITE_TIMEOUT
    while True:
        try:
            if dbapi_connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                dbapi_connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def make_engine(url: str) -> Engine:
    """Create an engine that works the same on SQLite and on MySQL/MariaDB."""
    if make_url(url).get_backend_name() == "sqlite":
        path = _sqlite_file(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_TIMEOUT})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            _use_wal(dbapi_connection)
            dbapi_connection.execute("PRAGMA foreign_keys=ON")

        return engine
    # pool_pre_ping survives MySQL's wait_timeout; the short connect timeout keeps /readyz honest.
    return create_engine(
        url, pool_pre_ping=True, pool_recycle=1800, connect_args={"connect_timeout": 2}
    )


@contextmanager
def _migration_lock(engine: Engine, connection: Connection) -> Iterator[None]:
    """Hold a lock that only one process migrating the same database can have at a time.

    Every gunicorn worker, and every replica of the gateway, migrates at start-up. Without the
    lock two of them starting together on a fresh database both find no tables and both try to
    create them, and the loser dies with "table already exists" (MySQL's DDL is not
    transactional, so a transaction alone does not keep them apart).
    """
    dialect = engine.dialect.name
    if dialect in ("mysql", "mariadb"):
        got = connection.scalar(
            text("SELECT GET_LOCK(:name, :seconds)"),
            {"name": MIGRATION_LOCK, "seconds": MIGRATION_LOCK_SECONDS},
        )
        connection.commit()
        if got != 1:
            raise RuntimeError(f"could not take the migration lock in {MIGRATION_LOCK_SECONDS} s")
        try:
            yield
        finally:
            connection.rollback()
            connection.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": MIGRATION_LOCK})
            connection.commit()
    elif dialect == "postgresql":
        key = int.from_bytes(MIGRATION_LOCK.encode()[:8], "big") & 0x7FFF_FFFF_FFFF_FFFF
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
        connection.commit()
        try:
            yield
        finally:
            connection.rollback()
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            connection.commit()
    elif (path := _sqlite_file(engine.url)) is not None:
        # SQLite has no named locks; a lock file beside the database does the same job.
        with open(path.with_name(path.name + ".migrate.lock"), "a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)
    else:
        yield


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (does nothing when it is there already)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.connect() as connection, _migration_lock(engine, connection):
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        connection.commit()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Return a session factory bound to the engine."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """Open a session, commit on success, roll back on error."""
    with factory() as session, session.begin():
        yield session

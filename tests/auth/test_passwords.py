"""Stored passwords: argon2id at OWASP's parameters, no plaintext anywhere, weak hashes upgraded.

Each SQL test runs on SQLite and on MariaDB.
"""

from __future__ import annotations

import re
import uuid

import pytest
from argon2 import PasswordHasher, Type
from sqlalchemy import inspect, select, text

from app.auth.models import User
from app.auth.passwords import hash_password, needs_rehash, verify_password
from app.auth.users import create_user
from tests.conftest import basic

pytestmark = pytest.mark.integration

PHC = re.compile(
    r"^\$argon2id\$v=(?P<v>\d+)\$m=(?P<m>\d+),t=(?P<t>\d+),p=(?P<p>\d+)"
    r"\$(?P<salt>[A-Za-z0-9+/]+)\$(?P<hash>[A-Za-z0-9+/]+)$"
)
PASSWORD = "a long and secret password"


def parse(stored: str) -> dict[str, int]:
    """Parse a PHC string `$argon2id$v=19$m=...,t=...,p=...$salt$hash`; fail unless argon2id."""
    match = PHC.match(stored)
    assert match, f"not an argon2id PHC string: {stored!r}"
    return {key: int(match[key]) for key in ("v", "m", "t", "p")}


def assert_owasp(stored: str) -> None:
    params = parse(stored)
    assert params["v"] == 19
    assert params["m"] >= 19456  # KiB: 19 MiB
    assert params["t"] >= 2
    assert params["p"] == 1


def new_email() -> str:
    return f"pw-{uuid.uuid4().hex[:10]}@example.test"


def stored_hash(app, email: str) -> str:
    with app.extensions["mp3"].engine.connect() as connection:
        return connection.scalar(select(User.password_hash).where(User.email == email.lower()))


def set_hash(app, email: str, value: str) -> None:
    with app.extensions["mp3"].engine.begin() as connection:
        connection.execute(
            User.__table__.update().where(User.email == email).values(password_hash=value)
        )


def test_the_stored_hash_is_argon2id_at_owasp_parameters(sql_app):
    email = new_email()
    create_user(sql_app.extensions["mp3"].sessions, email, PASSWORD)
    stored = stored_hash(sql_app, email)
    assert_owasp(stored)
    assert PASSWORD not in stored


def test_two_users_with_one_password_get_different_hashes(sql_app):
    first, second = new_email(), new_email()
    for email in (first, second):
        create_user(sql_app.extensions["mp3"].sessions, email, PASSWORD)
    assert stored_hash(sql_app, first) != stored_hash(sql_app, second)


def test_no_column_holds_the_plaintext(sql_app):
    engine = sql_app.extensions["mp3"].engine
    columns = {c["name"] for c in inspect(engine).get_columns("users")}
    assert columns == {"id", "email", "password_hash", "is_admin", "created_at"}
    email = new_email()
    create_user(sql_app.extensions["mp3"].sessions, email, PASSWORD)
    with engine.connect() as connection:
        row = connection.execute(
            text("SELECT * FROM users WHERE email = :email"), {"email": email}
        ).one()
    for name, value in row._mapping.items():
        assert PASSWORD not in str(value), f"column {name} holds the password"


@pytest.mark.parametrize(
    "weak",
    [
        pytest.param(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1), id="cheap"),
        pytest.param(PasswordHasher(time_cost=2, memory_cost=19456, parallelism=2), id="p2"),
        pytest.param(PasswordHasher(time_cost=3, memory_cost=4096, parallelism=1), id="low-m"),
        pytest.param(PasswordHasher(type=Type.I, memory_cost=19456, parallelism=1), id="argon2i"),
    ],
)
def test_a_weak_hash_is_upgraded_at_the_next_login(sql_app, sql_client, weak):
    email = new_email()
    create_user(sql_app.extensions["mp3"].sessions, email, PASSWORD)
    weak_hash = weak.hash(PASSWORD)
    set_hash(sql_app, email, weak_hash)
    assert needs_rehash(weak_hash)

    # A wrong password upgrades nothing: only the right one is ever hashed again.
    assert sql_client.post("/login", headers=basic(email, "not the password")).status_code == 401
    assert stored_hash(sql_app, email) == weak_hash

    assert sql_client.post("/login", headers=basic(email, PASSWORD)).status_code == 200
    upgraded = stored_hash(sql_app, email)
    assert upgraded != weak_hash
    assert_owasp(upgraded)
    assert not needs_rehash(upgraded)
    assert sql_client.post("/login", headers=basic(email, PASSWORD)).status_code == 200
    assert stored_hash(sql_app, email) == upgraded  # upgraded once, then left alone


def test_a_stronger_hash_is_kept(sql_app, sql_client):
    email = new_email()
    create_user(sql_app.extensions["mp3"].sessions, email, PASSWORD)
    strong = PasswordHasher(time_cost=3, memory_cost=32768, parallelism=1).hash(PASSWORD)
    set_hash(sql_app, email, strong)
    assert sql_client.post("/login", headers=basic(email, PASSWORD)).status_code == 200
    assert stored_hash(sql_app, email) == strong


@pytest.mark.parametrize(
    "stored",
    ["", "plaintext", "$argon2id$v=19$m=19456,t=2,p=1$bad", "$2b$12$" + "a" * 53, "ünïcode"],
    ids=["empty", "plain", "truncated", "bcrypt", "non-ascii"],
)
def test_a_hash_that_is_not_argon2_never_matches(stored):
    assert verify_password(stored, stored) is False
    assert needs_rehash(stored)


def test_verify_password_without_a_hash_says_no():
    assert verify_password(None, "anything at all") is False
    assert verify_password(hash_password("anything at all"), "anything at all") is True

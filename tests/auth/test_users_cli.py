"""`flask --app app users create|list|delete|unlock`, on SQLite and on MariaDB."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from app.auth import tokens
from app.auth.users import find_user, list_users
from tests.auth.conftest import app_on, fresh_address
from tests.conftest import basic
from tests.support import servers

pytestmark = pytest.mark.integration

PASSWORD = "a password for the cli"


@pytest.fixture(params=["sqlite", "mariadb"])
def cli_app(request, settings, tmp_path, mariadb_url) -> Iterator:  # type: ignore[type-arg]
    """The gateway on a database of this test's own, so `users list` shows exactly its users."""
    if request.param == "sqlite":
        yield app_on(settings, f"sqlite:///{tmp_path / 'users.db'}")
        return
    with servers.mariadb_database() as url:
        app = app_on(settings, url)
        yield app
        app.extensions["mp3"].engine.dispose()


@pytest.fixture
def cli(cli_app):  # type: ignore[no-untyped-def]
    runner = cli_app.test_cli_runner()

    def invoke(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
        return runner.invoke(args=["users", *args], input=input)

    return invoke


def login(app, email: str, password: str):  # type: ignore[no-untyped-def]
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = fresh_address()
    return client.post("/login", headers=basic(email, password))


def emails(app) -> list[str]:  # type: ignore[no-untyped-def]
    return [user.email for user in list_users(app.extensions["mp3"].sessions)]


def test_create_then_log_in(cli_app, cli, settings):
    result = cli("create", "Ann@Example.TEST", "--password", PASSWORD)
    assert result.exit_code == 0, result.output
    assert result.output == "created ann@example.test\n"
    assert emails(cli_app) == ["ann@example.test"]
    response = login(cli_app, "ann@example.test", PASSWORD)
    assert response.status_code == 200
    assert tokens.check(response.get_data(as_text=True), settings.jwt_secret).admin is False


def test_create_an_admin(cli_app, cli, settings):
    result = cli("create", "boss@example.test", "--password", PASSWORD, "--admin")
    assert result.exit_code == 0, result.output
    assert result.output == "created boss@example.test (admin)\n"
    assert find_user(cli_app.extensions["mp3"].sessions, "boss@example.test").is_admin
    response = login(cli_app, "boss@example.test", PASSWORD)
    assert tokens.check(response.get_data(as_text=True), settings.jwt_secret).admin is True


def test_list(cli_app, cli):
    assert cli("list").output == ""
    for email in ("a@example.test", "b@example.test"):
        assert cli("create", email, "--password", PASSWORD).exit_code == 0
    assert cli("create", "c@example.test", "--password", PASSWORD, "--admin").exit_code == 0
    result = cli("list")
    assert result.exit_code == 0, result.output
    lines = [line.split("\t") for line in result.output.splitlines()]
    assert [line[1] for line in lines] == ["a@example.test", "b@example.test", "c@example.test"]
    ids = [int(line[0]) for line in lines]
    assert ids == sorted(ids)
    assert [line[2].endswith(" admin") for line in lines] == [False, False, True]
    assert PASSWORD not in result.output
    assert "$argon2" not in result.output


def test_delete(cli_app, cli):
    cli("create", "gone@example.test", "--password", PASSWORD)
    cli("create", "stays@example.test", "--password", PASSWORD)
    result = cli("delete", "GONE@example.test")
    assert result.exit_code == 0, result.output
    assert result.output == "deleted gone@example.test\n"
    assert emails(cli_app) == ["stays@example.test"]
    assert login(cli_app, "gone@example.test", PASSWORD).status_code == 401


def test_delete_an_unknown_user(cli):
    result = cli("delete", "nobody@example.test")
    assert result.exit_code == 1
    assert "no user with the email nobody@example.test" in result.output


def test_a_duplicate_email_is_refused_whatever_its_case(cli_app, cli):
    assert cli("create", "dup@example.test", "--password", PASSWORD).exit_code == 0
    for email in ("dup@example.test", "DUP@Example.Test", "  dup@example.test "):
        result = cli("create", email, "--password", "another password")
        assert result.exit_code == 1, result.output
        assert "a user with the email dup@example.test exists already" in result.output
    assert emails(cli_app) == ["dup@example.test"]
    assert login(cli_app, "dup@example.test", PASSWORD).status_code == 200


def test_emails_that_differ_in_accents_are_different_users(cli_app, cli):
    # MariaDB's default collations compare "ä" equal to "a"; users must not.
    assert cli("create", "ba@example.test", "--password", PASSWORD).exit_code == 0
    result = cli("create", "bä@example.test", "--password", "another password")
    assert result.exit_code == 0, result.output
    assert sorted(emails(cli_app)) == ["ba@example.test", "bä@example.test"]
    assert login(cli_app, "bä@example.test", PASSWORD).status_code == 401
    assert login(cli_app, "bä@example.test", "another password").status_code == 200


def test_the_password_is_prompted_for_twice(cli_app, cli):
    result = cli("create", "prompted@example.test", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert "Password:" in result.output
    assert "Repeat for confirmation:" in result.output
    assert PASSWORD not in result.output  # hidden while typed
    assert login(cli_app, "prompted@example.test", PASSWORD).status_code == 200


def test_a_mistyped_confirmation_asks_again(cli_app, cli):
    typed = f"{PASSWORD}\n{PASSWORD}x\n{PASSWORD}\n{PASSWORD}\n"
    result = cli("create", "retyped@example.test", input=typed)
    assert result.exit_code == 0, result.output
    assert "do not match" in result.output
    assert login(cli_app, "retyped@example.test", PASSWORD).status_code == 200


BAD_EMAILS = [
    "not-an-email",
    "user@localhost",
    "a@@example.test",
    "a@b@example.test",
    "a b@example.test",
    "colon:user@example.test",
    "@example.test",
    "user@.example.test",
    "user@example.test.",
    "user@example..test",
    "tab\tuser@example.test",
    "null\x00@example.test",
    "x" * 250 + "@example.test",
    "",
]


def test_a_bad_email_is_refused(cli_app, cli):
    for email in BAD_EMAILS:
        result = cli("create", email, "--password", PASSWORD)
        assert result.exit_code == 1, (email, result.output)
        assert "is not an email address" in result.output, (email, result.output)
    assert emails(cli_app) == []


def test_a_short_password_is_refused(cli_app, cli):
    result = cli("create", "short@example.test", "--password", "1234567")
    assert result.exit_code == 1
    assert "at least 8 characters" in result.output
    assert emails(cli_app) == []


def test_unlock(cli_app, cli):
    result = cli("unlock", f"never-locked-{uuid.uuid4().hex[:8]}@example.test")
    assert result.exit_code == 0
    assert "was not locked" in result.output


def test_the_real_command(app, stack_env):
    """Run the installed `flask` entry point as an operator would, against the run's MariaDB."""
    flask = str(servers.VENV_BIN / "flask")
    env = {**os.environ, **stack_env}
    email = f"cli-{uuid.uuid4().hex[:8]}@example.test"

    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [flask, "--app", "app", "users", *args],
            env=env,
            cwd=servers.ROOT,
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
        )

    created = run("create", email, "--password", PASSWORD, "--admin")
    assert created.returncode == 0, created.stderr
    assert created.stdout == f"created {email} (admin)\n"
    assert login(app, email, PASSWORD).status_code == 200

    listed = run("list")
    assert listed.returncode == 0, listed.stderr
    assert any(line.split("\t")[1] == email for line in listed.stdout.splitlines())

    duplicate = run("create", email.upper(), "--password", PASSWORD)
    assert duplicate.returncode == 1
    assert f"Error: a user with the email {email} exists already" in duplicate.stderr

    deleted = run("delete", email)
    assert deleted.returncode == 0, deleted.stderr
    assert find_user(app.extensions["mp3"].sessions, email) is None

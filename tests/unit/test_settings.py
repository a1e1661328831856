"""core.settings: production refuses a missing or weak secret in one line; development fills in."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from core.settings import (
    MIN_SECRET_BYTES,
    PRODUCTION_REQUIRED,
    SECRET_FILE,
    SettingsError,
    load_settings,
)
from tests.support.servers import ROOT

SECRET = "s3cr3t-" + "x" * 40

PRODUCTION = {
    "APP_ENV": "production",
    "JWT_SECRET": SECRET,
    "DATABASE_URL": "mysql+pymysql://auth:pw@mysql:3306/auth",
    "MONGODB_URI": "mongodb://root:pw@mongodb:27017/mp3?authSource=admin",
    "CELERY_BROKER_URL": "amqp://mp3:pw@rabbitmq:5672//",
    "SMTP_HOST": "smtp.example.com",
    "PUBLIC_URL": "https://mp3.example.com/",
}


def production(tmp_path: Path, **changes: str | None) -> dict[str, str]:
    env = {**PRODUCTION, "DATA_DIR": str(tmp_path / "data"), **changes}
    return {name: value for name, value in env.items() if value is not None}


def test_the_production_variables_are_those_of_the_design():
    assert set(PRODUCTION_REQUIRED) == {
        "JWT_SECRET",
        "DATABASE_URL",
        "MONGODB_URI",
        "CELERY_BROKER_URL",
        "SMTP_HOST",
        "PUBLIC_URL",
    }


def test_production_with_everything_set(tmp_path):
    settings = load_settings(production(tmp_path))
    assert settings.production
    assert settings.jwt_secret == SECRET
    assert settings.database_url == PRODUCTION["DATABASE_URL"]
    assert settings.public_url == "https://mp3.example.com"
    assert settings.mongodb_database == "mp3"
    # Production never writes a generated secret anywhere.
    assert not (tmp_path / "data").exists()


# --- Production: each required variable missing ------------------------------------------------


@pytest.mark.parametrize("name", PRODUCTION_REQUIRED)
@pytest.mark.parametrize("absent", [None, "", "   "], ids=["unset", "empty", "blank"])
def test_each_missing_production_variable_is_named(tmp_path, name, absent):
    with pytest.raises(SettingsError) as caught:
        load_settings(production(tmp_path, **{name: absent}))
    assert str(caught.value) == f"{name} is required when APP_ENV=production"


def test_every_missing_production_variable_is_named_at_once(tmp_path):
    with pytest.raises(SettingsError) as caught:
        load_settings({"APP_ENV": "production", "DATA_DIR": str(tmp_path)})
    message = str(caught.value)
    assert message == f"{', '.join(PRODUCTION_REQUIRED)} are required when APP_ENV=production"
    assert "\n" not in message


def run_create_app(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    """Start the gateway the way gunicorn does, in a process with only `env` (and PATH)."""
    return subprocess.run(
        [sys.executable, "-c", "from app import create_app; create_app()"],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("name", PRODUCTION_REQUIRED)
def test_create_app_stops_with_one_line_naming_the_missing_variable(tmp_path, name):
    result = run_create_app(production(tmp_path, **{name: None}), tmp_path)
    assert result.returncode != 0
    assert result.stderr.splitlines() == [
        f"configuration error: {name} is required when APP_ENV=production"
    ]
    assert result.stdout == ""


def test_create_app_stops_with_one_line_for_a_short_secret(tmp_path):
    result = run_create_app(production(tmp_path, JWT_SECRET="too-short"), tmp_path)
    assert result.returncode != 0
    assert result.stderr.splitlines() == [
        f"configuration error: JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes long"
    ]


# --- The secret ----------------------------------------------------------------------------------


@pytest.mark.parametrize("app_env", ["production", "development"])
@pytest.mark.parametrize("secret", ["", "x" * (MIN_SECRET_BYTES - 1), "é" * 15 + "x"])
def test_a_secret_under_32_bytes_is_refused(tmp_path, app_env, secret):
    env = production(tmp_path, APP_ENV=app_env, JWT_SECRET=secret or "x")
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    assert str(caught.value) == f"JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes long"


def test_a_secret_of_32_bytes_is_enough(tmp_path):
    # Bytes, not characters: sixteen two-byte letters are 32 bytes.
    for secret in ("x" * MIN_SECRET_BYTES, "é" * 16):
        assert load_settings(production(tmp_path, JWT_SECRET=secret)).jwt_secret == secret


def test_the_examples_placeholder_secret_is_refused_in_production(tmp_path):
    placeholder = "change-me-at-least-32-random-bytes-long-0123456789"
    with pytest.raises(SettingsError, match=r"^JWT_SECRET still holds the example's"):
        load_settings(production(tmp_path, JWT_SECRET=placeholder))


def test_the_secret_loses_the_newline_a_secret_file_leaves(tmp_path):
    assert load_settings(production(tmp_path, JWT_SECRET=f" {SECRET}\n")).jwt_secret == SECRET


# --- Coercion ----------------------------------------------------------------------------------

HTTP = "must be a URL starting with http:// or https://"
MONGO = "must be a URL starting with mongodb:// or mongodb+srv://"
ANY_URL = "must be a URL starting with scheme://"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MAX_UPLOAD_BYTES", "abc", "MAX_UPLOAD_BYTES must be a whole number, not 'abc'"),
        ("MAX_UPLOAD_BYTES", "0", "MAX_UPLOAD_BYTES must be at least 1, not 0"),
        ("MAX_UPLOAD_BYTES", "2GB", "MAX_UPLOAD_BYTES must be a whole number, not '2GB'"),
        ("SMTP_PORT", "smtp", "SMTP_PORT must be a whole number, not 'smtp'"),
        ("SMTP_PORT", "70000", "SMTP_PORT must be at most 65535, not 70000"),
        ("JWT_TTL_SECONDS", "0", "JWT_TTL_SECONDS must be at least 1, not 0"),
        ("JWT_TTL_SECONDS", "1.5", "JWT_TTL_SECONDS must be a whole number, not '1.5'"),
        ("CONVERT_TIME_LIMIT", "5", "CONVERT_TIME_LIMIT must be at least 10, not 5"),
        ("MP3_RETENTION_DAYS", "-1", "MP3_RETENTION_DAYS must be at least 1, not -1"),
        ("LOGIN_MAX_FAILURES", "many", "LOGIN_MAX_FAILURES must be a whole number, not 'many'"),
        ("LOGIN_LOCKOUT_SECONDS", "0", "LOGIN_LOCKOUT_SECONDS must be at least 1, not 0"),
        ("SMTP_STARTTLS", "maybe", "SMTP_STARTTLS must be true or false, not 'maybe'"),
        ("KEEP_VIDEOS", "2", "KEEP_VIDEOS must be true or false, not '2'"),
        (
            "APP_ENV",
            "staging",
            "APP_ENV must be development, production or test, not 'staging'",
        ),
        ("PUBLIC_URL", "mp3.example.com", f"PUBLIC_URL {HTTP}"),
        ("PUBLIC_URL", "ftp://mp3.example.com", f"PUBLIC_URL {HTTP}"),
        ("PUBLIC_URL", "https://", "PUBLIC_URL must name a host, not 'https://'"),
        ("MONGODB_URI", "http://mongodb:27017", f"MONGODB_URI {MONGO}"),
        ("DATABASE_URL", "users.db", f"DATABASE_URL {ANY_URL}"),
        ("CELERY_BROKER_URL", "rabbitmq:5672", f"CELERY_BROKER_URL {ANY_URL}"),
    ],
)
@pytest.mark.parametrize("app_env", ["production", "development"])
def test_a_value_that_cannot_be_coerced_is_named(tmp_path, app_env, name, value, message):
    env = {**production(tmp_path, APP_ENV=app_env), name: value}
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    assert str(caught.value) == message


def test_a_bad_url_is_named_without_its_password(tmp_path):
    with pytest.raises(SettingsError) as caught:
        load_settings(production(tmp_path, DATABASE_URL="mysql+pymysql//auth:hunter2@mysql/auth"))
    assert str(caught.value).startswith("DATABASE_URL ")
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("TRUE", True), (" yes ", True), ("on", True), ("0", False), ("off", False)],
)
def test_booleans(tmp_path, value, expected):
    assert (
        load_settings({"DATA_DIR": str(tmp_path), "SMTP_STARTTLS": value}).smtp_starttls is expected
    )


def test_numbers_are_coerced(tmp_path):
    settings = load_settings(
        {"DATA_DIR": str(tmp_path), "MAX_UPLOAD_BYTES": " 1048576 ", "SMTP_PORT": "587"}
    )
    assert settings.max_upload_bytes == 1048576
    assert settings.smtp_port == 587


# --- Development defaults ----------------------------------------------------------------------


def test_development_defaults(tmp_path):
    data = tmp_path / "data"
    settings = load_settings({"DATA_DIR": str(data)})
    assert settings.app_env == "development"
    assert not settings.production
    assert settings.data_dir == data
    assert settings.database_url == f"sqlite:///{data}/users.db"
    assert settings.broker_url == f"filesystem://{data}/broker"
    assert settings.mongodb_uri == "mongodb://127.0.0.1:27017/mp3?directConnection=true"
    assert settings.mongodb_database == "mp3"
    assert (settings.smtp_host, settings.smtp_port) == ("127.0.0.1", 8025)
    assert settings.smtp_username is None and settings.smtp_password is None
    assert settings.smtp_starttls is False
    assert settings.jwt_ttl_seconds == 3600
    assert settings.public_url == "http://localhost:8080"
    assert settings.max_upload_bytes == 2147483648
    assert settings.ffmpeg_binary is None


def test_empty_variables_take_the_defaults(tmp_path):
    # ConfigMaps and .env files often carry a variable with nothing after the "=".
    names = ["MAX_UPLOAD_BYTES", "SMTP_PORT", "SMTP_STARTTLS", "JWT_TTL_SECONDS", "PUBLIC_URL"]
    settings = load_settings({"DATA_DIR": str(tmp_path), **dict.fromkeys(names, "")})
    assert settings.max_upload_bytes == 2147483648
    assert settings.smtp_port == 8025
    assert settings.public_url == "http://localhost:8080"


def test_data_dir_defaults_to_var_under_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings({})
    assert settings.data_dir == tmp_path / "var"
    assert settings.database_url == f"sqlite:///{tmp_path}/var/users.db"


def test_the_generated_secret_is_private_and_kept(tmp_path):
    data = tmp_path / "data"
    first = load_settings({"DATA_DIR": str(data)}).jwt_secret
    path = data / SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first.encode()) >= MIN_SECRET_BYTES
    assert path.read_text().strip() == first
    # The next start (the gateway again, or a worker) uses the same secret, so tokens survive.
    assert load_settings({"DATA_DIR": str(data)}).jwt_secret == first
    assert [p.name for p in data.iterdir()] == [SECRET_FILE]
    # Another data folder is another installation, with a secret of its own.
    assert load_settings({"DATA_DIR": str(tmp_path / "other")}).jwt_secret != first


def test_a_given_secret_is_not_written_anywhere(tmp_path):
    settings = load_settings({"DATA_DIR": str(tmp_path / "data"), "JWT_SECRET": SECRET})
    assert settings.jwt_secret == SECRET
    assert not (tmp_path / "data" / SECRET_FILE).exists()


def test_processes_starting_together_get_one_secret(tmp_path):
    data = tmp_path / "data"
    found: list[str] = []
    barrier = threading.Barrier(8)

    def load() -> None:
        barrier.wait()
        found.append(load_settings({"DATA_DIR": str(data)}).jwt_secret)

    threads = [threading.Thread(target=load) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 8
    assert len(set(found)) == 1
    assert len(found[0]) >= MIN_SECRET_BYTES
    assert [p.name for p in data.iterdir()] == [SECRET_FILE]


def test_a_damaged_secret_file_is_named(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / SECRET_FILE).write_text("short\n")
    with pytest.raises(SettingsError) as caught:
        load_settings({"DATA_DIR": str(data)})
    assert str(caught.value).startswith("JWT_SECRET: ")
    assert str(data / SECRET_FILE) in str(caught.value)

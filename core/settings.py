"""Read, coerce and check every configuration variable of the service, in one place.

The gateway, the workers, Flower and the command-line tools all build their settings here, so a
variable means the same thing everywhere. In development each variable has an embedded default
(SQLite, the embedded MongoDB-wire server, kombu's filesystem transport, a local mail sink); with
``APP_ENV=production`` every secret must be given, and start-up stops naming the first one missing.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit


class SettingsError(ValueError):
    """A configuration variable is missing or invalid; the message names it."""


#: Variables that must be set explicitly in production: secrets and the addresses of real services.
PRODUCTION_REQUIRED = (
    "JWT_SECRET",
    "DATABASE_URL",
    "MONGODB_URI",
    "CELERY_BROKER_URL",
    "SMTP_HOST",
    "PUBLIC_URL",
)

#: JWT_SECRET must carry at least this many bytes of key material (RFC 7518 §3.2 for HS256).
MIN_SECRET_BYTES = 32

DEFAULT_MONGO_PORT = 27017
DEFAULT_SMTP_SINK_PORT = 8025


@dataclass(frozen=True)
class Settings:
    """Every setting the service reads, already coerced and checked."""

    app_env: str
    data_dir: Path
    database_url: str
    mongodb_uri: str
    broker_url: str
    smtp_host: str
    smtp_port: int
    smtp_username: str | None
    smtp_password: str | None
    smtp_starttls: bool
    mail_from: str
    jwt_secret: str
    jwt_ttl_seconds: int
    public_url: str
    max_upload_bytes: int
    ffmpeg_binary: str | None
    keep_videos: bool
    convert_time_limit: int
    mp3_retention_days: int
    login_max_failures: int
    login_lockout_seconds: int

    @property
    def production(self) -> bool:
        return self.app_env == "production"

    @property
    def mongodb_database(self) -> str:
        """Return the database named in MONGODB_URI's path, or ``mp3``."""
        return urlsplit(self.mongodb_uri).path.lstrip("/") or "mp3"


def _bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise SettingsError(f"{name} must be true or false, not {value!r}")


def _int(name: str, value: str, *, minimum: int = 0) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {value!r}") from None
    if number < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, not {number}")
    return number


def _jwt_secret(env: Mapping[str, str], data_dir: Path, production: bool) -> str:
    secret = env.get("JWT_SECRET", "")
    if secret:
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise SettingsError(f"JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes long")
        return secret
    if production:
        raise SettingsError("JWT_SECRET is required when APP_ENV=production")
    # Development: generate the secret once and keep it beside the data, so tokens survive
    # restarts and no secret ever needs to be written into the repository.
    path = data_dir / "jwt_secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from ``env`` (the process environment by default)."""
    env = os.environ if env is None else env
    app_env = env.get("APP_ENV", "development").strip() or "development"
    if app_env not in {"development", "production", "test"}:
        raise SettingsError(f"APP_ENV must be development, production or test, not {app_env!r}")
    production = app_env == "production"
    if production:
        for name in PRODUCTION_REQUIRED:
            if not env.get(name, "").strip():
                raise SettingsError(f"{name} is required when APP_ENV=production")

    data_dir = Path(env.get("DATA_DIR", "./var")).expanduser().resolve()
    broker_dir = data_dir / "broker"
    return Settings(
        app_env=app_env,
        data_dir=data_dir,
        database_url=env.get("DATABASE_URL") or f"sqlite:///{data_dir / 'users.db'}",
        mongodb_uri=env.get("MONGODB_URI")
        or f"mongodb://127.0.0.1:{DEFAULT_MONGO_PORT}/mp3?directConnection=true",
        broker_url=env.get("CELERY_BROKER_URL") or f"filesystem://{broker_dir}",
        smtp_host=env.get("SMTP_HOST") or "127.0.0.1",
        smtp_port=_int("SMTP_PORT", env.get("SMTP_PORT") or str(DEFAULT_SMTP_SINK_PORT), minimum=1),
        smtp_username=env.get("SMTP_USERNAME") or None,
        smtp_password=env.get("SMTP_PASSWORD") or None,
        smtp_starttls=_bool("SMTP_STARTTLS", env.get("SMTP_STARTTLS", "false")),
        mail_from=env.get("MAIL_FROM") or "MP3 converter <mp3@localhost>",
        jwt_secret=_jwt_secret(env, data_dir, production),
        jwt_ttl_seconds=_int("JWT_TTL_SECONDS", env.get("JWT_TTL_SECONDS", "3600"), minimum=1),
        public_url=(env.get("PUBLIC_URL") or "http://localhost:8080").rstrip("/"),
        max_upload_bytes=_int(
            "MAX_UPLOAD_BYTES", env.get("MAX_UPLOAD_BYTES", str(2 * 1024**3)), minimum=1
        ),
        ffmpeg_binary=env.get("FFMPEG_BINARY") or None,
        keep_videos=_bool("KEEP_VIDEOS", env.get("KEEP_VIDEOS", "false")),
        convert_time_limit=_int(
            "CONVERT_TIME_LIMIT", env.get("CONVERT_TIME_LIMIT", "1500"), minimum=10
        ),
        mp3_retention_days=_int("MP3_RETENTION_DAYS", env.get("MP3_RETENTION_DAYS", "7"), minimum=1),
        login_max_failures=_int(
            "LOGIN_MAX_FAILURES", env.get("LOGIN_MAX_FAILURES", "10"), minimum=1
        ),
        login_lockout_seconds=_int(
            "LOGIN_LOCKOUT_SECONDS", env.get("LOGIN_LOCKOUT_SECONDS", "300"), minimum=1
        ),
    )

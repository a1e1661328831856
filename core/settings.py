"""Read, coerce and check every configuration variable of the service, in one place.

The gateway, the workers, Flower and the command-line tools all build their settings here, so a
variable means the same thing everywhere. In development each variable has an embedded default
(SQLite, the embedded MongoDB-wire server, kombu's filesystem transport, a local mail sink); with
``APP_ENV=production`` every secret must be given, and start-up stops with one line naming each
variable that is missing.
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

#: The example secrets files carry this marker; a production secret that still has it is refused.
PLACEHOLDER = "change-me"

#: Where the development secret is kept, under DATA_DIR.
SECRET_FILE = "jwt_secret"  # noqa: S105 - the name of a file, not a secret

DEFAULT_MONGO_PORT = 27017
DEFAULT_SMTP_SINK_PORT = 8025
DEFAULT_MONGODB_URI = f"mongodb://127.0.0.1:{DEFAULT_MONGO_PORT}/mp3?directConnection=true"
MONGO_SCHEMES = ("mongodb", "mongodb+srv")


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
    #: How many reverse proxies (the Ingress) stand before the gateway and set X-Forwarded-*.
    trusted_proxy_hops: int = 0

    @property
    def production(self) -> bool:
        return self.app_env == "production"

    @property
    def mongodb_database(self) -> str:
        """Return the database named in MONGODB_URI's path, or ``mp3``."""
        return urlsplit(self.mongodb_uri).path.lstrip("/") or "mp3"


def _get(env: Mapping[str, str], name: str, default: str) -> str:
    """Return the variable, or `default` when it is unset or empty (as ConfigMaps leave it)."""
    return env.get(name, "").strip() or default


def _bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise SettingsError(f"{name} must be true or false, not {value!r}")


def _int(name: str, value: str, *, minimum: int = 0, maximum: int | None = None) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {value!r}") from None
    if number < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, not {number}")
    if maximum is not None and number > maximum:
        raise SettingsError(f"{name} must be at most {maximum}, not {number}")
    return number


def _url(
    name: str, env: Mapping[str, str], default: str, schemes: tuple[str, ...] | None = None
) -> str:
    """Return the variable, or `default` when unset; raise unless it is a URL of `schemes`."""
    value = _get(env, name, "")
    if not value:
        return default
    scheme, sep, _ = value.partition("://")
    scheme = scheme.lower()
    if not sep or not scheme or (schemes is not None and scheme not in schemes):
        wanted = " or ".join(f"{s}://" for s in schemes) if schemes else "scheme://"
        # The value may hold a password, so the message names the variable but never repeats it.
        raise SettingsError(f"{name} must be a URL starting with {wanted}")
    return value


def _public_url(env: Mapping[str, str]) -> str:
    value = _url("PUBLIC_URL", env, "http://localhost:8080", ("http", "https"))
    if not urlsplit(value).hostname:
        raise SettingsError(f"PUBLIC_URL must name a host, not {value!r}")
    return value.rstrip("/")


def _check_secret(name: str, secret: str) -> str:
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise SettingsError(f"{name} must be at least {MIN_SECRET_BYTES} bytes long")
    return secret


def _generated_secret(data_dir: Path) -> str:
    """Return the development secret kept in DATA_DIR, making it on the first call."""
    path = data_dir / SECRET_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        # The gateway's workers, the Celery workers and Flower may all start at once on a fresh
        # DATA_DIR: write the whole secret to a private file first, then link it into place in
        # one step, so no process ever reads a half-written (or empty) secret.
        tmp = data_dir / f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48) + "\n")
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # Another process was first; everyone uses its secret.
        finally:
            tmp.unlink(missing_ok=True)
    secret = path.read_text().strip()
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise SettingsError(
            f"JWT_SECRET: {path} holds fewer than {MIN_SECRET_BYTES} bytes; "
            "delete it to make a new one"
        )
    return secret


def _jwt_secret(env: Mapping[str, str], data_dir: Path, production: bool) -> str:
    secret = _get(env, "JWT_SECRET", "")
    if secret:
        if production and PLACEHOLDER in secret.lower():
            raise SettingsError(
                f"JWT_SECRET still holds the example's {PLACEHOLDER!r} value; set a random one"
            )
        return _check_secret("JWT_SECRET", secret)
    if production:
        raise SettingsError("JWT_SECRET is required when APP_ENV=production")
    # Development: generate the secret once and keep it beside the data, so tokens survive
    # restarts and no secret ever needs to be written into the repository.
    return _generated_secret(data_dir)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from ``env`` (the process environment by default)."""
    env = os.environ if env is None else env
    app_env = _get(env, "APP_ENV", "development")
    if app_env not in {"development", "production", "test"}:
        raise SettingsError(f"APP_ENV must be development, production or test, not {app_env!r}")
    production = app_env == "production"
    if production:
        # Name every missing variable at once, so an operator fixes them in one round.
        missing = [name for name in PRODUCTION_REQUIRED if not _get(env, name, "")]
        if missing:
            verb = "is" if len(missing) == 1 else "are"
            raise SettingsError(f"{', '.join(missing)} {verb} required when APP_ENV=production")

    data_dir = Path(_get(env, "DATA_DIR", "./var")).expanduser().resolve()
    broker_dir = data_dir / "broker"
    return Settings(
        app_env=app_env,
        data_dir=data_dir,
        database_url=_url("DATABASE_URL", env, f"sqlite:///{data_dir / 'users.db'}"),
        mongodb_uri=_url("MONGODB_URI", env, DEFAULT_MONGODB_URI, MONGO_SCHEMES),
        broker_url=_url("CELERY_BROKER_URL", env, f"filesystem://{broker_dir}"),
        smtp_host=_get(env, "SMTP_HOST", "127.0.0.1"),
        smtp_port=_int(
            "SMTP_PORT",
            _get(env, "SMTP_PORT", str(DEFAULT_SMTP_SINK_PORT)),
            minimum=1,
            maximum=65535,
        ),
        smtp_username=_get(env, "SMTP_USERNAME", "") or None,
        smtp_password=env.get("SMTP_PASSWORD") or None,
        smtp_starttls=_bool("SMTP_STARTTLS", _get(env, "SMTP_STARTTLS", "false")),
        mail_from=_get(env, "MAIL_FROM", "MP3 converter <mp3@localhost>"),
        jwt_secret=_jwt_secret(env, data_dir, production),
        jwt_ttl_seconds=_int("JWT_TTL_SECONDS", _get(env, "JWT_TTL_SECONDS", "3600"), minimum=1),
        public_url=_public_url(env),
        max_upload_bytes=_int(
            "MAX_UPLOAD_BYTES", _get(env, "MAX_UPLOAD_BYTES", str(2 * 1024**3)), minimum=1
        ),
        ffmpeg_binary=_get(env, "FFMPEG_BINARY", "") or None,
        keep_videos=_bool("KEEP_VIDEOS", _get(env, "KEEP_VIDEOS", "false")),
        convert_time_limit=_int(
            "CONVERT_TIME_LIMIT", _get(env, "CONVERT_TIME_LIMIT", "1500"), minimum=10
        ),
        mp3_retention_days=_int(
            "MP3_RETENTION_DAYS", _get(env, "MP3_RETENTION_DAYS", "7"), minimum=1
        ),
        login_max_failures=_int(
            "LOGIN_MAX_FAILURES", _get(env, "LOGIN_MAX_FAILURES", "10"), minimum=1
        ),
        login_lockout_seconds=_int(
            "LOGIN_LOCKOUT_SECONDS", _get(env, "LOGIN_LOCKOUT_SECONDS", "300"), minimum=1
        ),
        trusted_proxy_hops=_int(
            "TRUSTED_PROXY_HOPS", _get(env, "TRUSTED_PROXY_HOPS", "0"), minimum=0, maximum=5
        ),
    )

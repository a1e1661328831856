"""Where mp3c keeps the server's URL and the login token: a JSON file only its owner may read."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import platformdirs

DEFAULT_URL = "http://localhost:8080"


@dataclass
class Config:
    """The server mp3c talks to and, once logged in, who it is there."""

    url: str = DEFAULT_URL
    email: str = ""
    token: str = ""

    def token_expired(self, now: float | None = None) -> bool:
        """Return whether the token's own `exp` claim has passed (the server has the last word)."""
        try:
            payload = self.token.split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            return float(claims["exp"]) < (time.time() if now is None else now)
        except (IndexError, ValueError, KeyError, TypeError):
            return False


def config_dir() -> Path:
    """Return the folder of the config file: MP3C_CONFIG_DIR, else the user's config folder."""
    return Path(os.environ.get("MP3C_CONFIG_DIR") or platformdirs.user_config_dir("mp3c"))


def config_path() -> Path:
    return config_dir() / "config.json"


def load() -> Config:
    """Return the saved config, with MP3C_URL (when set) in place of the saved URL."""
    config = Config()
    with contextlib.suppress(FileNotFoundError, ValueError, TypeError):
        saved = json.loads(config_path().read_text())
        config = Config(**{k: str(v) for k, v in saved.items() if k in Config.__annotations__})
    if os.environ.get("MP3C_URL"):
        config.url = os.environ["MP3C_URL"]
    config.url = config.url.rstrip("/")
    return config


def save(config: Config) -> Path:
    """Write the config atomically with mode 0600 (the token is a password for an hour)."""
    folder = config_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = config_path()
    partial = path.with_suffix(".tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        os.fchmod(fh.fileno(), 0o600)  # Also when a stale temporary file had another mode.
        json.dump(asdict(config), fh, indent=2)
    os.replace(partial, path)
    return path

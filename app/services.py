"""What a request needs from the outside world, built once per app by create_app()."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from pymongo.database import Database
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings


@dataclass
class Services:
    """The settings, the SQL engine and sessions, and the MongoDB database of one app."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    mongo: Database


def services() -> Services:
    """Return the services of the current app."""
    return current_app.extensions["mp3"]

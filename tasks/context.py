"""What every task of a worker process needs: the settings and the MongoDB database."""

from __future__ import annotations

from functools import cache

from pymongo.database import Database

from core import mongo
from core.settings import Settings, load_settings


@cache
def settings() -> Settings:
    """Return the worker's settings, read once per process."""
    return load_settings()


def db() -> Database:
    """Return the service's MongoDB database (one pooled client per process)."""
    current = settings()
    return mongo.database(current.mongodb_uri, current.mongodb_database)

"""Throttle logins per account and per client address, in MongoDB so every gateway shares it.

Each key (`account:EMAIL`, `address:IP`) counts failures. Every `max_failures` consecutive failures
lock the key for `lockout_seconds`, doubling with each lockout; an account that reaches
HARD_LIMIT consecutive failures stays locked until an operator runs `users unlock`, so no
account ever sees more than HARD_LIMIT guesses in a row.
"""

from __future__ import annotations

import math
from datetime import timedelta

from pymongo import ReturnDocument
from pymongo.database import Database

from core.jobs import now

HARD_LIMIT = 100


def _keys(email: str, address: str) -> list[str]:
    return [f"account:{email.strip().lower()}", f"address:{address}"]


def retry_after(db: Database, email: str, address: str) -> int | None:
    """Return the seconds to wait before another try, or None when logging in is allowed."""
    moment = now()
    wait = 0.0
    for doc in db["login_throttle"].find({"_id": {"$in": _keys(email, address)}}):
        if doc.get("hard_locked"):
            return 3600
        until = doc.get("locked_until")
        if until is not None and until > moment:
            wait = max(wait, (until - moment).total_seconds())
    return math.ceil(wait) if wait > 0 else None


def record_failure(
    db: Database, email: str, address: str, *, max_failures: int, lockout_seconds: int
) -> None:
    """Count a failed login against the account and the address; lock them when due."""
    throttle = db["login_throttle"]
    for key in _keys(email, address):
        doc = throttle.find_one_and_update(
            {"_id": key},
            {"$inc": {"failures": 1}, "$setOnInsert": {"lockouts": 0}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        failures = doc["failures"]
        update: dict = {"updated_at": now()}
        if key.startswith("account:") and failures >= HARD_LIMIT:
            update["hard_locked"] = True
        if failures % max_failures == 0:
            seconds = lockout_seconds * 2 ** min(doc.get("lockouts", 0), 6)
            update["locked_until"] = now() + timedelta(seconds=seconds)
            throttle.update_one({"_id": key}, {"$set": update, "$inc": {"lockouts": 1}})
        else:
            throttle.update_one({"_id": key}, {"$set": update})


def record_success(db: Database, email: str) -> None:
    """Forget the account's failures after a right password."""
    db["login_throttle"].delete_one({"_id": _keys(email, "")[0]})


def unlock(db: Database, email: str) -> bool:
    """Lift every lock on the account; return whether there was one."""
    return db["login_throttle"].delete_one({"_id": _keys(email, "")[0]}).deleted_count > 0

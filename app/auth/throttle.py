"""Throttle logins per account and per client address, in MongoDB so every gateway shares it.

Each key (`account:EMAIL`, `address:IP`) counts failures. Every `max_failures` consecutive failures
lock an account for `lockout_seconds`, doubling with each lockout; an account that reaches
HARD_LIMIT consecutive failures stays locked until an operator runs `users unlock`, so no
account ever sees more than HARD_LIMIT guesses in a row. A right password clears the account.

An address is treated more leniently, because many people may share one (an office, a NAT, a
proxy) and nothing clears it: it is locked after ADDRESS_FACTOR times as many failures, and its
count starts again after ADDRESS_MEMORY without a failure. Without that, every tenth mistyped
password from a shared address, ever, would lock everyone behind it out.

An attempt is counted *before* its password is checked, in one atomic step that also tells it
its number. Checking a lock first and counting afterwards would let a burst of parallel guesses
all pass the check while the first of them is still being verified; numbered attempts cannot
overrun a limit however many arrive at once. A right password gives its count back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pymongo import ReturnDocument
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from core.jobs import now

HARD_LIMIT = 100
ADDRESS_FACTOR = 5
ADDRESS_MEMORY = timedelta(hours=1)
#: The longest lockout is lockout_seconds times 2 to this power.
MAX_DOUBLINGS = 6
#: What an account locked for good is told to wait (it is a hint: only an operator unlocks it).
HARD_LOCK_RETRY = 3600


def _account(email: str) -> str:
    return f"account:{email.strip().lower()}"


def _address(address: str) -> str:
    return f"address:{address}"


def _collection(db: Database) -> Collection:
    return db["login_throttle"]


class Throttled(Exception):
    """The attempt must not be checked; `retry_after` says in how many seconds to try again."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"try again in {retry_after} s")
        self.retry_after = retry_after


@dataclass
class _Count:
    """One key's share of an attempt: the attempt's number there, and what it changed."""

    key: str
    threshold: int
    hard: bool
    number: int = 0
    locked: int | None = None  # the key's lockout count after the lock this attempt set
    hard_locked: bool = False


@dataclass
class Attempt:
    """A login attempt that has been counted and may now have its password checked."""

    throttle: Collection
    counts: list[_Count] = field(default_factory=list)

    def failed(self) -> None:
        """Keep the count; remember when the key last failed (an address forgets after a while)."""
        for count in self.counts:
            self.throttle.update_one({"_id": count.key}, {"$set": {"last_failure": now()}})

    def succeeded(self) -> None:
        """Clear the account; give the address its count back."""
        account, *others = self.counts
        self.throttle.delete_one({"_id": account.key})
        for count in others:
            _give_back(self.throttle, count)

    def abandoned(self) -> None:
        """Give every count back: the password was never judged (a database was down)."""
        for count in self.counts:
            _give_back(self.throttle, count)


def _give_back(throttle: Collection, count: _Count) -> None:
    undo: dict = {"$inc": {"failures": -1}}
    if count.hard_locked:
        undo["$unset"] = {"hard_locked": ""}
    throttle.update_one({"_id": count.key}, undo)
    if count.locked is not None:
        # Lift the lock this attempt set, unless a later one has been set since.
        throttle.update_one(
            {"_id": count.key, "lockouts": count.locked},
            {"$unset": {"locked_until": ""}, "$inc": {"lockouts": -1}},
        )


def _lock(throttle: Collection, key: str, lockouts: int, lockout_seconds: int) -> int | None:
    """Lock the key after its `lockouts`-th run of failures; None if another attempt did first."""
    seconds = lockout_seconds * 2 ** min(lockouts, MAX_DOUBLINGS)
    done = throttle.update_one(
        {"_id": key, "lockouts": lockouts},
        {"$set": {"locked_until": now() + timedelta(seconds=seconds)}, "$inc": {"lockouts": 1}},
    )
    return seconds if done.modified_count else None


def _wait(until: datetime | None, moment: datetime) -> int | None:
    if until is None or until <= moment:
        return None
    return max(1, math.ceil((until - moment).total_seconds()))


def _count_one(throttle: Collection, key: str) -> dict:
    """Add one failure under the key, making its document if there is none; return it after.

    Two steps rather than one upserting find_one_and_update: parallel upserts of a new key may
    all apply their increment yet some be answered with no document (SecantusDB does this; and
    MongoDB may refuse one with a duplicate key), and an increment cannot be safely retried. An
    upsert that only creates the document can be: it changes nothing when the document exists.
    """
    while True:
        try:
            throttle.update_one(
                {"_id": key}, {"$setOnInsert": {"failures": 0, "lockouts": 0}}, upsert=True
            )
        except DuplicateKeyError:
            pass  # a parallel attempt made it
        doc = throttle.find_one_and_update(
            {"_id": key}, {"$inc": {"failures": 1}}, return_document=ReturnDocument.AFTER
        )
        if doc is not None:
            return doc
        # A right password or an operator deleted it between the steps: make it again.


def _take(throttle: Collection, count: _Count, lockout_seconds: int) -> None:
    """Number this attempt under the key; raise Throttled (counting nothing) if it must wait."""
    moment = now()
    doc = _count_one(throttle, count.key)
    number, lockouts = doc["failures"], doc.get("lockouts", 0)
    runs_before = (number - 1) // count.threshold
    if doc.get("hard_locked") or (count.hard and number > HARD_LIMIT):
        wait: int | None = HARD_LOCK_RETRY
    else:
        wait = _wait(doc.get("locked_until"), moment)
    if wait is None and runs_before > lockouts:
        # The run before this attempt is complete but its lock is not set yet (the attempt that
        # completed it is on its way to set it, or died on the way): set it, and wait with it.
        wait = _lock(throttle, count.key, lockouts, lockout_seconds) or 1
    if wait is not None:
        throttle.update_one({"_id": count.key}, {"$inc": {"failures": -1}})
        raise Throttled(wait)
    count.number = number
    if count.hard and number >= HARD_LIMIT:
        throttle.update_one({"_id": count.key}, {"$set": {"hard_locked": True}})
        count.hard_locked = True
    if number % count.threshold == 0 and _lock(throttle, count.key, lockouts, lockout_seconds):
        # This attempt ends a run: the ones after it wait, whatever its own password proves.
        count.locked = lockouts + 1


def begin(
    db: Database, email: str, address: str, *, max_failures: int, lockout_seconds: int
) -> Attempt:
    """Count a login attempt against the account and the address; raise Throttled if it waits."""
    throttle = _collection(db)
    address_key = _address(address)
    # An address that has been quiet for a while starts afresh (see the module's docstring); a
    # lock it still serves is kept.
    moment = now()
    throttle.delete_one(
        {
            "_id": address_key,
            "last_failure": {"$lt": moment - ADDRESS_MEMORY},
            "$or": [{"locked_until": {"$exists": False}}, {"locked_until": {"$lte": moment}}],
        }
    )
    attempt = Attempt(throttle)
    for count in (
        _Count(_account(email), max_failures, hard=True),
        _Count(address_key, max_failures * ADDRESS_FACTOR, hard=False),
    ):
        try:
            _take(throttle, count, lockout_seconds)
        except Throttled:
            attempt.abandoned()
            raise
        attempt.counts.append(count)
    return attempt


def unlock(db: Database, email: str) -> bool:
    """Lift every lock on the account; return whether there was one."""
    return _collection(db).delete_one({"_id": _account(email)}).deleted_count > 0

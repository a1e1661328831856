"""Hash and verify passwords with argon2id at OWASP's recommended parameters."""

from __future__ import annotations

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

# OWASP Password Storage Cheat Sheet: argon2id, m=19 MiB, t=2, p=1 is the recommended minimum.
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, hash_len=32, salt_len=16, type=Type.ID)

# Verifying against this when the email is unknown makes a login take the same time either way,
# so response times do not tell an attacker which emails have accounts.
_DUMMY_HASH = HASHER.hash("an unknown user's password is never this")


def hash_password(password: str) -> str:
    """Return the argon2id hash of `password`."""
    return HASHER.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Return whether `password` matches; with no stored hash, spend the same time and say no."""
    try:
        return HASHER.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """Return whether the hash was made with weaker parameters than today's."""
    try:
        return HASHER.check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True

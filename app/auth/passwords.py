"""Hash and verify passwords with argon2id at OWASP's recommended parameters."""

from __future__ import annotations

from argon2 import PasswordHasher, Type, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError

# OWASP Password Storage Cheat Sheet: argon2id, m=19 MiB, t=2, p=1 is the recommended minimum.
HASHER = PasswordHasher(
    time_cost=2, memory_cost=19 * 1024, parallelism=1, hash_len=32, salt_len=16, type=Type.ID
)

# Verifying against this when the email is unknown makes a login take the same time either way,
# so response times do not tell an attacker which emails have accounts.
_DUMMY_HASH = HASHER.hash("an unknown user's password is never this")

#: The parameters every stored hash should have at least.
_WANTED = extract_parameters(_DUMMY_HASH)


def hash_password(password: str) -> str:
    """Return the argon2id hash of `password`."""
    return HASHER.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Return whether `password` matches; with no stored hash, spend the same time and say no."""
    try:
        return HASHER.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerificationError, InvalidHashError, ValueError):
        # ValueError: a stored hash that is not even ASCII, which no hasher ever wrote.
        return False


def needs_rehash(stored_hash: str) -> bool:
    """Return whether the hash is weaker than today's parameters (or not argon2id at all)."""
    try:
        found = extract_parameters(stored_hash)
    except (InvalidHashError, ValueError):
        return True
    wanted = _WANTED
    # Only weaker hashes are redone: a hash made with stronger parameters (by a newer release, or
    # while an operator tried higher costs) stays, rather than being weakened at every login.
    return (
        found.type is not Type.ID
        or found.version < wanted.version
        or found.memory_cost < wanted.memory_cost
        or found.time_cost < wanted.time_cost
        or found.parallelism != wanted.parallelism
        or found.hash_len < wanted.hash_len
        or found.salt_len < wanted.salt_len
    )

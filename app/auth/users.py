"""Create, find, authenticate and delete users."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.auth.models import User, normalize_email
from app.auth.passwords import hash_password, needs_rehash, verify_password
from app.db import transaction

MIN_PASSWORD_LENGTH = 8
MAX_EMAIL_LENGTH = 254  # RFC 5321's limit on a forward path, less its angle brackets


class UserError(ValueError):
    """A user cannot be created or changed as asked; the message says why."""


def create_user(
    sessions: sessionmaker[Session], email: str, password: str, *, admin: bool = False
) -> User:
    """Add a user; raise UserError for a bad email, a short password or a taken email."""
    email = normalize_email(email)
    check_email(email)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    user = User(email=email, password_hash=hash_password(password), is_admin=admin)
    try:
        with transaction(sessions) as session:
            session.add(user)
    except IntegrityError:
        raise UserError(f"a user with the email {email} exists already") from None
    return user


def check_email(email: str) -> None:
    """Raise UserError unless `email` (normalized) looks like an address someone can log in with."""
    local, _, domain = email.rpartition("@")
    labels = domain.split(".")
    if (
        not local
        or "@" in local
        or len(email) > MAX_EMAIL_LENGTH
        or not email.isprintable()
        or any(c.isspace() for c in email)
        # HTTP Basic splits "email:password" at the first colon: such a user could never log in.
        or ":" in email
        or len(labels) < 2
        or not all(labels)
    ):
        raise UserError(f"{email!r} is not an email address")


def find_user(sessions: sessionmaker[Session], email: str) -> User | None:
    """Return the user with this email (in any case), or None."""
    with sessions() as session:
        return session.scalar(select(User).where(User.email == normalize_email(email)))


def authenticate(sessions: sessionmaker[Session], email: str, password: str) -> User | None:
    """Return the user if the password is right, upgrading a hash made with weaker parameters."""
    user = find_user(sessions, email)
    if not verify_password(user.password_hash if user else None, password):
        return None
    assert user is not None
    if needs_rehash(user.password_hash):
        new_hash = hash_password(password)
        with transaction(sessions) as session:
            stored = session.get(User, user.id)
            if stored is None:
                return None  # Deleted since the lookup: no token for a user who is gone.
            stored.password_hash = new_hash
        user.password_hash = new_hash
    return user


def list_users(sessions: sessionmaker[Session]) -> list[User]:
    """Return every user, oldest first."""
    with sessions() as session:
        return list(session.scalars(select(User).order_by(User.id)))


def delete_user(sessions: sessionmaker[Session], email: str) -> bool:
    """Delete the user; return whether one existed."""
    with transaction(sessions) as session:
        user = session.scalar(select(User).where(User.email == normalize_email(email)))
        if user is None:
            return False
        session.delete(user)
        return True

"""The SQL model of a user."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Boolean, DateTime, Integer, String
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class User(Base):
    """A person who may log in; `email` is stored lower-cased, so it is unique whatever its case."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # Binary on MySQL/MariaDB, whose default collations would take "bä@x" and "ba@x" for one
    # email (migration 0002); the lower-casing above makes the index case-insensitive.
    email: Mapped[str] = mapped_column(
        String(254).with_variant(
            mysql.VARCHAR(254, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
        ),
        unique=True,
        index=True,
    )
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=lambda: datetime.now(UTC)
    )


def normalize_email(email: str) -> str:
    """Return the form an email is stored and looked up in."""
    return email.strip().lower()

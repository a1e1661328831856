"""Compare emails byte for byte on MySQL and MariaDB.

Revision ID: 0002
Revises: 0001

Emails are stored lower-cased, so the unique index needs no help from the database to be
case-insensitive. MySQL's and MariaDB's default collations also ignore accents, though: under
them "bä@example.com" is a duplicate of "ba@example.com", and a login as one finds the other,
which would let a guesser spread one account's attempts over many throttle keys. A binary
collation makes the database compare exactly what the application stored, as SQLite does.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0002"
down_revision = "0001"


def _is_mysql() -> bool:
    return op.get_bind().dialect.name in ("mysql", "mariadb")


def upgrade() -> None:
    if _is_mysql():
        op.alter_column(
            "users",
            "email",
            existing_type=sa.String(254),
            type_=mysql.VARCHAR(254, charset="utf8mb4", collation="utf8mb4_bin"),
            existing_nullable=False,
        )


def downgrade() -> None:
    if _is_mysql():
        op.alter_column(
            "users",
            "email",
            existing_type=mysql.VARCHAR(254, charset="utf8mb4", collation="utf8mb4_bin"),
            type_=mysql.VARCHAR(254, charset="utf8mb4"),
            existing_nullable=False,
        )

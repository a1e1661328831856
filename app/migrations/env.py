"""Alembic environment: runs the migrations on the connection app.db.migrate hands over."""

from alembic import context

from app.auth.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()

"""`flask --app app users create|list|delete|unlock`."""

from __future__ import annotations

import click
from flask import Blueprint

from app.auth import throttle
from app.auth.users import UserError, create_user, delete_user, list_users
from app.services import services

bp = Blueprint("users", __name__, cli_group="users")


@bp.cli.command("create")
@click.argument("email")
@click.option("--password", help="Prompted for (twice, hidden) when not given.")
@click.option("--admin", is_flag=True, help="Allow the administrator's operations.")
def create(email: str, password: str | None, admin: bool) -> None:
    """Add a user."""
    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = create_user(services().sessions, email, password, admin=admin)
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"created {user.email}{' (admin)' if user.is_admin else ''}")


@bp.cli.command("list")
def list_() -> None:
    """List the users."""
    for user in list_users(services().sessions):
        flags = " admin" if user.is_admin else ""
        click.echo(f"{user.id}\t{user.email}\t{user.created_at:%Y-%m-%d %H:%M}{flags}")


@bp.cli.command("delete")
@click.argument("email")
def delete(email: str) -> None:
    """Delete a user."""
    if not delete_user(services().sessions, email):
        raise click.ClickException(f"no user with the email {email}")
    click.echo(f"deleted {email.strip().lower()}")


@bp.cli.command("unlock")
@click.argument("email")
def unlock(email: str) -> None:
    """Lift the login lock of an account after too many failed logins."""
    found = throttle.unlock(services().mongo, email)
    click.echo(f"unlocked {email.strip().lower()}" if found else f"{email} was not locked")

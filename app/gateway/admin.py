"""Operations for administrators: GET /admin/users lists every account."""

from __future__ import annotations

from datetime import UTC

from flask import Blueprint, Response, jsonify

from app.auth.guard import admin_required
from app.auth.models import User
from app.auth.users import list_users
from app.services import services

bp = Blueprint("admin", __name__, url_prefix="/admin")


def _public(user: User) -> dict:
    created = user.created_at
    if created is not None and created.tzinfo is None:
        # MySQL's DATETIME drops the zone; every time stored here is UTC.
        created = created.replace(tzinfo=UTC)
    return {
        "id": user.id,
        "email": user.email,
        "admin": bool(user.is_admin),
        "created_at": created.isoformat().replace("+00:00", "Z") if created else None,
    }


@bp.get("/users")
@admin_required
def users() -> Response:
    """Return every user, oldest first, without their password hashes."""
    return jsonify(users=[_public(user) for user in list_users(services().sessions)])

"""POST /login: HTTP Basic in, a JWT out (plain text, as the course's curl expects, or JSON)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from app.auth import throttle
from app.auth.tokens import Identity, issue
from app.auth.users import authenticate
from app.errors import ApiError
from app.services import services

bp = Blueprint("auth", __name__)

_BASIC = {"WWW-Authenticate": 'Basic realm="mp3-converter", charset="UTF-8"'}


def login_user(email: str, password: str) -> tuple[Identity, str]:
    """Check the credentials under the login throttle; return the identity and a new token."""
    svc = services()
    address = request.remote_addr or "unknown"
    wait = throttle.retry_after(svc.mongo, email, address)
    if wait is not None:
        raise ApiError(
            429, "too_many_attempts", f"too many failed logins; try again in {wait} s",
            {"Retry-After": str(wait)},
        )
    user = authenticate(svc.sessions, email, password)
    if user is None:
        throttle.record_failure(
            svc.mongo, email, address,
            max_failures=svc.settings.login_max_failures,
            lockout_seconds=svc.settings.login_lockout_seconds,
        )
        raise ApiError(401, "invalid_credentials", "wrong email or password", _BASIC)
    throttle.record_success(svc.mongo, email)
    identity = Identity(user_id=user.id, email=user.email, admin=user.is_admin)
    return identity, issue(identity, svc.settings.jwt_secret, svc.settings.jwt_ttl_seconds)


@bp.post("/login")
def login() -> Response:
    """Return a token for the user named by the Basic credentials."""
    auth = request.authorization
    if auth is None or auth.type != "basic" or not auth.username or auth.password is None:
        raise ApiError(
            401, "unauthorized", "send your email and password with HTTP Basic auth", _BASIC
        )
    _, token = login_user(auth.username, auth.password)
    if request.accept_mimetypes.best_match(["text/plain", "application/json"]) == "application/json":
        return jsonify(
            access_token=token,
            token_type="Bearer",
            expires_in=services().settings.jwt_ttl_seconds,
        )
    return Response(token, mimetype="text/plain")

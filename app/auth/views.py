"""POST /login: HTTP Basic in, a JWT out (plain text, as the course's curl expects, or JSON)."""

from __future__ import annotations

import base64
import binascii

from flask import Blueprint, Response, jsonify, request

from app.auth import throttle
from app.auth.tokens import Identity, issue
from app.auth.users import authenticate
from app.errors import ApiError
from app.services import services

bp = Blueprint("auth", __name__)

_BASIC = {"WWW-Authenticate": 'Basic realm="mp3-converter", charset="UTF-8"'}


def basic_credentials() -> tuple[str, str]:
    """Return the email and password of the request's HTTP Basic header; raise 401 without one."""
    header = request.headers.get("Authorization", "").strip()
    if not header:
        raise ApiError(
            401, "unauthorized", "send your email and password with HTTP Basic auth", _BASIC
        )
    scheme, _, encoded = header.partition(" ")
    malformed = ApiError(
        401,
        "unauthorized",
        "the Authorization header must be 'Basic ' and the base64 of email:password",
        _BASIC,
    )
    if scheme.lower() != "basic":
        raise malformed
    try:
        raw = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise malformed from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        # The challenge asks for UTF-8 (RFC 7617), but older clients send ISO-8859-1, which
        # decodes any byte; a password that was typed the same way then still matches.
        text = raw.decode("latin-1")
    email, colon, password = text.partition(":")
    if not colon or not email.strip() or not password:
        raise malformed
    return email, password


def login_user(email: str, password: str) -> tuple[Identity, str]:
    """Check the credentials under the login throttle; return the identity and a new token."""
    svc = services()
    address = request.remote_addr or "unknown"
    try:
        attempt = throttle.begin(
            svc.mongo,
            email,
            address,
            max_failures=svc.settings.login_max_failures,
            lockout_seconds=svc.settings.login_lockout_seconds,
        )
    except throttle.Throttled as exc:
        raise ApiError(
            429,
            "too_many_attempts",
            f"too many failed logins; try again in {exc.retry_after} s",
            {"Retry-After": str(exc.retry_after)},
        ) from None
    try:
        user = authenticate(svc.sessions, email, password)
    except Exception:
        attempt.abandoned()
        raise
    if user is None:
        attempt.failed()
        raise ApiError(401, "invalid_credentials", "wrong email or password", _BASIC)
    attempt.succeeded()
    identity = Identity(user_id=user.id, email=user.email, admin=user.is_admin)
    return identity, issue(identity, svc.settings.jwt_secret, svc.settings.jwt_ttl_seconds)


@bp.post("/login")
def login() -> Response:
    """Return a token for the user named by the Basic credentials."""
    email, password = basic_credentials()
    _, token = login_user(email, password)
    wanted = request.accept_mimetypes.best_match(["text/plain", "application/json"])
    if wanted == "application/json":
        response = jsonify(
            access_token=token,
            token_type="Bearer",  # noqa: S106 - the OAuth 2 token type, not a password
            expires_in=services().settings.jwt_ttl_seconds,
        )
    else:
        response = Response(token, mimetype="text/plain")
    # A token is a credential: no cache on the way may keep it (RFC 6749 §5.1).
    response.headers["Cache-Control"] = "no-store"
    return response

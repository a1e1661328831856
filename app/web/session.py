"""The page's session: a signed cookie with the user and a CSRF token, and its API identity.

The session is Flask's signed cookie (HttpOnly, SameSite=Lax, Secure over HTTPS). It lasts as long
as an API token does (JWT_TTL_SECONDS from login), and like a token it is checked without a hop to
the database. Requests that change something and prove who they are with the cookie must also
carry the session's CSRF token in the X-CSRF-Token header; Bearer requests need no such token,
since a browser never adds a Bearer header by itself.
"""

from __future__ import annotations

import hmac
import secrets

from flask import Flask, has_request_context, request, session
from flask.sessions import SecureCookieSessionInterface

from app.auth.tokens import Identity
from app.errors import ApiError

CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class WebSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, marked Secure whenever the request came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        # Behind the Ingress, gunicorn turns `X-Forwarded-Proto: https` from a trusted proxy
        # (FORWARDED_ALLOW_IPS) into the https scheme, so `is_secure` tells the client's scheme.
        secure = bool(app.config["SESSION_COOKIE_SECURE"])
        return secure or (has_request_context() and request.is_secure)


def csrf_token() -> str:
    """Return the session's CSRF token, making one if it has none yet."""
    token = session.get("csrf")
    if not isinstance(token, str) or not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def csrf_valid(sent: str | None) -> bool:
    """Return whether `sent` is the session's CSRF token."""
    token = session.get("csrf")
    if not isinstance(token, str) or not token or not sent:
        return False
    return hmac.compare_digest(token.encode(), sent.encode("utf-8", "replace"))


def log_in(identity: Identity) -> None:
    """Start a new session for the identity, with a fresh CSRF token."""
    # A new session, never the visitor's old one: whoever planted a cookie before the login
    # cannot ride on the session that follows it.
    session.clear()
    session.permanent = True
    session.update(uid=identity.user_id, email=identity.email, admin=identity.admin)
    session["csrf"] = secrets.token_urlsafe(32)


def log_out() -> None:
    """End the session."""
    session.clear()


def logged_in() -> Identity | None:
    """Return the identity of the session, or None when nobody is logged in."""
    uid = session.get("uid")
    if not isinstance(uid, int):
        return None
    return Identity(
        user_id=uid, email=str(session.get("email", "")), admin=bool(session.get("admin", False))
    )


def session_identity() -> Identity | None:
    """The API's identity source for the page: the session's user, with CSRF checked on writes."""
    identity = logged_in()
    if identity is None:
        return None
    if request.method not in SAFE_METHODS and not csrf_valid(request.headers.get(CSRF_HEADER)):
        raise ApiError(
            403,
            "csrf_failed",
            f"this request needs the page's {CSRF_HEADER} header; reload the page",
        )
    return identity
